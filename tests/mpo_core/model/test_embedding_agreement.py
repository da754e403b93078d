"""Sentence-embedding agreement and zero-shot STS between an encoder and its compressed copy (tiny random BERT)."""
import copy

import pytest
import torch
from transformers import AutoTokenizer, BertConfig, BertModel

import mpo_core
from mpo_core.model.embedding_agreement import embedding_agreement, pair_embeddings, sentence_embeddings

PAIRS = [("a man is playing a guitar.", "a man plays the guitar."),
         ("a dog runs in the park.", "the stock market fell sharply today."),
         ("two children are swimming.", "kids swim in a pool."),
         ("the cat sleeps.", "a woman is slicing an onion for the soup tonight.")]
SCORES = [4.8, 0.2, 4.0, 0.0]


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(str(mpo_core.default_model_path()))


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    config = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64)
    return BertModel(config).eval()


def test_padding_does_not_change_a_sentence_embedding(model, tokenizer):
    alone = sentence_embeddings(model, tokenizer, [PAIRS[0][0]])
    padded = sentence_embeddings(model, tokenizer, [PAIRS[0][0], PAIRS[3][1]])  # batched with a longer one
    torch.testing.assert_close(alone[0], padded[0], rtol=1e-4, atol=1e-5)
    single_batches = sentence_embeddings(model, tokenizer, [PAIRS[0][0], PAIRS[3][1]], batch_size=1)
    torch.testing.assert_close(single_batches, padded, rtol=1e-4, atol=1e-5)


def test_mean_pooling_by_hand(model, tokenizer):
    batch = tokenizer([PAIRS[1][0]], return_tensors="pt")
    with torch.no_grad():
        expected = model(**batch).last_hidden_state[0].mean(0)
    torch.testing.assert_close(sentence_embeddings(model, tokenizer, [PAIRS[1][0]])[0], expected)


def test_an_identical_copy_agrees_fully(model, tokenizer):
    found = embedding_agreement(model, copy.deepcopy(model), tokenizer, PAIRS, SCORES)
    assert found.sentences == 8
    assert found.cosine_mean == pytest.approx(1.0, abs=1e-6) and found.cosine_min == pytest.approx(1.0, abs=1e-6)
    assert found.spearman_compressed == pytest.approx(found.spearman_original)


def test_a_compressed_copy_moves_and_the_reference_can_be_reused(model, tokenizer):
    compressed = copy.deepcopy(model)
    mpo_core.apply_mpo(compressed, mpo_core.MPOConfig(n=3, compression_ratio=0.05),
                       progress=False)
    reference = pair_embeddings(model, tokenizer, PAIRS)
    found = embedding_agreement(reference, compressed, tokenizer, PAIRS, SCORES)
    assert found.cosine_min <= found.cosine_mean < 0.9999
    assert found == embedding_agreement(model, compressed, tokenizer, PAIRS, SCORES)
    assert embedding_agreement(reference, compressed, tokenizer, PAIRS).spearman_original is None
    assert model.training is False and compressed.training is False


def test_bad_input_is_named(model, tokenizer):
    with pytest.raises(ValueError, match="no sentence pairs"):
        pair_embeddings(model, tokenizer, [])
    with pytest.raises(ValueError, match="4 pairs but 3 scores"):
        embedding_agreement(model, model, tokenizer, PAIRS, SCORES[:3])
    with pytest.raises(ValueError, match="not the same sentences"):
        embedding_agreement(pair_embeddings(model, tokenizer, PAIRS[:2]), model, tokenizer, PAIRS)


def test_rows_come_back_in_the_order_given_whatever_the_length_sorted_batching(model, tokenizer):
    sentences = [PAIRS[3][1], PAIRS[0][0], PAIRS[2][1], PAIRS[1][1], PAIRS[3][0]]  # lengths out of order
    batched = sentence_embeddings(model, tokenizer, sentences, batch_size=2)
    for k, sentence in enumerate(sentences):
        torch.testing.assert_close(batched[k], sentence_embeddings(model, tokenizer, [sentence])[0],
                                   rtol=1e-4, atol=1e-5)
