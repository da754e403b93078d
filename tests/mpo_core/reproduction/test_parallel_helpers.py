from mpo_core.reproduction import parallel


def test_helpers_are_told_to_force_when_the_run_is_forced(tmp_path, monkeypatch):
    commands = []

    class Fake:
        def __init__(self, command, **kwargs):
            commands.append(command)

        def wait(self):
            return 0

    monkeypatch.setenv("MPO_RESULTS_DIR", str(tmp_path))
    monkeypatch.setattr(parallel.subprocess, "Popen", Fake)
    parallel.wait_for(parallel.start_helpers("table1", "small", 1, force=True))
    parallel.wait_for(parallel.start_helpers("table1", "small", 1))
    assert commands[0][-1] == "--force" and "--force" not in commands[1]
