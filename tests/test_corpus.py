"""Tests of the n-gram truth built from text (jaxcollapse.corpus) and of ``jaxcollapse run --corpus``."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from jaxcollapse import cli
from jaxcollapse.cli import options, settings
from jaxcollapse.io.corpus import UNK, load_corpus, ngram_model, show_label, tokenize
from jaxcollapse.errors import ConfigError
from jaxcollapse.io.rundir import load_run


def markov_text(n: int = 3000, seed: int = 0) -> str:
    """A character text from a small random Markov chain, with words, spaces and newlines."""
    rng = np.random.default_rng(seed)
    words = ["the", "cat", "sat", "on", "a", "mat", "and", "then", "ran", "off", "quickly", "zebra"]
    weights = np.array([8, 4, 4, 5, 6, 3, 5, 2, 3, 2, 1, 0.5])
    out, size = [], 0
    while size < n:
        w = words[rng.choice(len(words), p=weights / weights.sum())]
        sep = "\n" if rng.random() < 0.1 else (", " if rng.random() < 0.05 else " ")
        out.append(w + sep)
        size += len(w) + len(sep)
    return "".join(out)


# ------------------------------------------------------------------------------------------------
# the n-gram table


def test_bigram_table_is_the_empirical_conditional_distribution():
    c = ngram_model("abacabad", order=2)
    init = c.initial
    # tokens ranked by frequency: a (4), b (2), c, d (1 each; ties by token)
    assert init.labels == ("a", "b", "c", "d")
    # contexts (previous char) ranked by frequency: a (4 events: b, c, b, d), b (2: a, a), c (1: a)
    assert init.context_labels == ("a", "b", "c")
    np.testing.assert_allclose(init.probs, [[0, 0.5, 0.25, 0.25], [1, 0, 0, 0], [1, 0, 0, 0]])
    np.testing.assert_allclose(init.weights, [4 / 7, 2 / 7, 1 / 7])
    assert c.tokens == 8 and c.events == 7 and c.all_events == 7 and list(c.counts) == [4, 2, 1]
    assert c.distinct_tokens == 4 and c.distinct_contexts == 3 and not c.unk


def test_unigram_is_one_context():
    c = ngram_model("aab", order=1)
    assert c.initial.probs.shape == (1, 2) and c.initial.context_labels == ("",)
    np.testing.assert_allclose(c.initial.probs, [[2 / 3, 1 / 3]])
    assert c.events == 3


def test_trigram_contexts_and_labels():
    text = "abcabcabx"
    c = ngram_model(text, order=3)
    labels = dict(zip(c.initial.context_labels, c.initial.probs))
    # "ab" is followed by c, c, x
    ab = labels["ab"]
    tok = {t: i for i, t in enumerate(c.initial.labels)}
    assert ab[tok["c"]] == pytest.approx(2 / 3) and ab[tok["x"]] == pytest.approx(1 / 3)
    assert c.events == len(text) - 2


def test_vocabulary_cap_uses_unk():
    c = ngram_model("aaaabbbccd", order=1, max_vocab=3)
    assert c.initial.labels == ("a", "b", UNK) and c.unk and c.distinct_tokens == 4
    np.testing.assert_allclose(c.initial.probs, [[0.4, 0.3, 0.3]])
    # contexts made of rare tokens fall into <unk> too
    c2 = ngram_model("aaaabbbccd", order=2, max_vocab=3)
    assert UNK in c2.initial.context_labels


def test_context_cap_renormalises_weights():
    text = markov_text(2000)
    full = ngram_model(text, order=3, max_contexts=10**6)
    top = ngram_model(text, order=3, max_contexts=5)
    assert top.initial.probs.shape[0] == 5 and full.initial.probs.shape[0] > 5
    assert top.initial.weights.sum() == pytest.approx(1.0)
    assert np.all(np.diff(top.counts) <= 0)
    np.testing.assert_array_equal(top.counts, full.counts[:5])
    np.testing.assert_allclose(top.initial.weights, top.counts / top.counts.sum())
    np.testing.assert_allclose(top.initial.probs, full.initial.probs[:5])
    assert top.events == int(top.counts.sum()) and top.all_events == len(text) - 2


def test_words_tokenizer():
    assert tokenize("The cat, the mat.\nOK!", "words") == ["The", "cat", ",", "the", "mat", ".", "OK", "!"]
    c = ngram_model("the cat sat . the cat ran .", order=2, tokenizer="words")
    ctx = dict(zip(c.initial.context_labels, c.initial.probs))
    tok = {t: i for i, t in enumerate(c.initial.labels)}
    assert ctx["cat"][tok["sat"]] == pytest.approx(0.5) and ctx["cat"][tok["ran"]] == pytest.approx(0.5)
    c3 = ngram_model("a b c a b d", order=3, tokenizer="words")
    assert "a b" in c3.initial.context_labels


def test_non_ascii_and_bom(tmp_path):
    path = tmp_path / "t.txt"
    path.write_bytes("\ufeffnaïve café ☕ naïve".encode("utf-8"))
    c = load_corpus(path, order=1)
    assert "ï" in c.initial.labels and "☕" in c.initial.labels and "\ufeff" not in c.initial.labels
    assert c.path == str(path) and len(c.sha256) == 64


def test_show_label():
    assert show_label("a\nb\t") == "a\\nb\\t"
    assert show_label("") == "(none)"
    assert show_label("x\x00") == "x\\u0000"


@pytest.mark.parametrize("content,kwargs,message", [
    (None, {}, "not found"),
    (b"", {}, "is empty"),
    (b"\xff\xfeabc", {}, "not valid UTF-8"),
    (b"  \n ", {"tokens": "words"}, "no word tokens"),
    (b"ab", {"order": 3}, "fewer than the order"),
    (b"abc", {"order": 0}, "order must be an integer"),
    (b"abc", {"tokens": "bytes"}, "tokens must be one of"),
    (b"abc", {"max_vocab": 1}, "max_vocab"),
    (b"abc", {"max_contexts": 0}, "max_contexts"),
])
def test_corpus_errors(tmp_path, content, kwargs, message):
    path = tmp_path / "c.txt"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ConfigError, match=message):
        load_corpus(path, **kwargs)


def test_directory_is_not_a_corpus(tmp_path):
    with pytest.raises(ConfigError, match="directory"):
        load_corpus(tmp_path)


# ------------------------------------------------------------------------------------------------
# jaxcollapse run --corpus


@pytest.fixture(scope="module")
def text_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("text") / "markov.txt"
    path.write_text(markov_text(1500), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def chars_run(text_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("corpus_runs") / "chars"
    code = cli.main(["run", "--corpus", str(text_file), "--order", "2", "--chains", "30", "--generations", "15",
                     "--max-contexts", "20", "--out", str(out), "-q"])
    assert code == 0
    return out


def test_chars_run_writes_contexts(chars_run, text_file):
    corpus = load_corpus(text_file, order=2, max_contexts=20)
    m = json.loads((chars_run / "manifest.json").read_text())
    assert m["corpus"]["events"] == corpus.events and m["corpus"]["contexts"] == 20
    assert m["corpus"]["sha256"] == corpus.sha256
    # default sample size: each context refitted on its corpus count
    assert m["config"]["synthetic"] == corpus.events and m["config"]["per_context"] is True
    assert m["settings"]["sizes"]["synthetic"] == corpus.counts.tolist()
    with open(chars_run / "contexts.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["context", "label", "weight", "support", "collision", "collapsed_fraction",
                             "median_collapse_time", "top_token", "top_token_label", "top_token_share",
                             "top_token_p0"]
    assert len(rows) == 20
    assert [r["label"] for r in rows] == [show_label(x) for x in corpus.initial.context_labels]
    z = np.load(chars_run / "traces.npz")
    ctx_t = z["context_collapse_time"]
    assert ctx_t.shape == (30, 20)
    for j, r in enumerate(rows):
        assert float(r["collapsed_fraction"]) == pytest.approx((ctx_t[:, j] >= 0).mean())
        assert float(r["weight"]) == pytest.approx(corpus.initial.weights[j])
    assert z["context_mean_l1_initial"].shape == (16, 20)
    assert tuple(z["context_labels"]) == corpus.initial.context_labels
    for name in ("traces.png", "collapse.png", "contexts.png"):
        assert (chars_run / "plots" / name).stat().st_size > 5000


def test_chars_run_report_and_show(chars_run, capsys):
    assert cli.main(["show", str(chars_run)]) == 0
    out = capsys.readouterr().out
    assert "earliest-collapsing contexts" in out and "collapses onto" in out
    assert "contexts: 20;" in out
    run = load_run(chars_run)
    assert run.initial.context_labels is not None and run.initial.labels is not None


def test_corpus_sample_sizes(text_file):
    corpus = load_corpus(text_file, order=2, max_contexts=20)
    base = {"corpus": str(text_file), "order": 2, "max_contexts": 20}
    plan = settings.resolve(base, None)
    assert plan.regime.synthetic == corpus.events and plan.resolved["chains"] == options.CORPUS_CHAINS
    assert plan.resolved["per_context"] is True
    plan = settings.resolve({**base, "synthetic": 500, "regime": "partially_synthetic"}, None)
    assert plan.regime.synthetic == 500 and plan.regime.real == corpus.events
    plan = settings.resolve({**base, "regime": "fresh_real", "real": 300, "fraction": 0.2}, None)
    assert plan.regime.real == 300 and plan.regime.fraction == 0.2
    assert "synthetic" not in plan.resolved


def test_words_run_through_the_entry_point(text_file, tmp_path):
    out = tmp_path / "words"
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    proc = subprocess.run([sys.executable, "-m", "jaxcollapse", "run", "--corpus", str(text_file), "--tokens",
                           "words", "--order", "2", "--max-vocab", "8", "--chains", "20", "--generations", "10",
                           "--sampler", "tokens", "--no-plots", "--out", str(out)],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "words, order 2" in proc.stdout and "contexts: 8;" in proc.stdout
    run = load_run(out)
    assert run.initial.labels[-1] == UNK and len(run.initial.labels) == 8
    assert run.config["tokens"] == "words" and run.config["max_vocab"] == 8


def test_corpus_conflicts(text_file, tmp_path, capsys):
    np.save(tmp_path / "p.npy", np.array([0.5, 0.5]))
    for argv in (["--initial-file", str(tmp_path / "p.npy")], ["--initial", "uniform"]):
        code = cli.main(["run", "--corpus", str(text_file), *argv])
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1 and err.startswith("jaxcollapse: error:")
