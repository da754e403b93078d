"""GLUE from a local ``glue_data`` folder (or the hub when online) and the papers' metrics."""
