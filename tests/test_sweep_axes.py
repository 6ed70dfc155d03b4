"""Sweep points over every study setting of ``jaxcollapse run``: corpus, order, tokens, initial files, the
estimator and its training. Each point equals the run with the same settings, keyed by the point's key."""

import importlib
import os
import shutil
import textwrap

import numpy as np
import pytest

import jaxcollapse as jc
from jaxcollapse import cli
from jaxcollapse.cli import run as run_command
from jaxcollapse.cli import settings as cli_settings
from jaxcollapse.cli.options import OPTIONS
from jaxcollapse.errors import ConfigError
from jaxcollapse.io.corpus import load_corpus

SP = importlib.import_module("jaxcollapse.sweeps.spec")
PL = importlib.import_module("jaxcollapse.sweeps.plan")
RUN = importlib.import_module("jaxcollapse.sweeps.run")

TALES = os.path.join(os.path.dirname(jc.__file__), "data", "tales.txt")
SMALL = {"max_vocab": 16, "synthetic": 150}


def _table(tmp_path, corpus):
    """A file with the corpus's context weights and other rows (its study has the corpus's shapes and sizes)."""
    path = tmp_path / "truth.npz"
    np.savez(path, probs=np.roll(corpus.initial.probs, 3, axis=1), weights=corpus.initial.weights)
    return str(path)


def _as_run(given: dict, spec, key):
    """The study of ``jaxcollapse run`` with the point's settings (the command line's resolver and launcher)."""
    flags = {o.key: None for o in OPTIONS}
    flags.update(given, chains=spec.chains, generations=spec.generations, final=True)
    s = cli_settings.resolve(flags, None)
    res = s.resolved
    launch = run_command._trained_launcher(s) if "estimator" in res else jc.simulate
    return launch(key, s.initial, s.regime, chains=spec.chains, generations=spec.generations,
                  decoding=s.decoding, smoothing=res["smoothing"], sampler=res["sampler"], keep_final=True)


def _run_and_compare(points, spec):
    """Run the sweep's call groups and check every point against the run with its settings; the plan."""
    plan = PL.make_plan(spec)
    records = {}
    for _, bucket, members in plan.tasks():
        records.update(RUN.run_group(plan, bucket, members))
    for p in plan.points:
        rec, run = records[p.index], _as_run(points[p.index], spec, SP.point_key(spec.seed, p))
        assert np.array_equal(rec["final"], run.final), p.index
        assert np.array_equal(rec["collapse_time"], run.collapse_time)
        assert np.array_equal(rec["context_collapse_time"], run.context_collapse_time)
        for m in rec["metrics"]:
            # a padded point's metrics sum over more zeros: equal up to rounding
            np.testing.assert_allclose(rec[f"final_{m}"], run.traces[m][:, -1], rtol=1e-12, atol=1e-14)
    return plan


def test_corpus_order_2_and_file_points_equal_run(tmp_path):
    corpus = {"corpus": TALES, "order": 2, "max_contexts": 6, **SMALL}                 # a corpus, order 2
    table = _table(tmp_path, load_corpus(TALES, 2, max_vocab=16, max_contexts=6))
    points = [corpus, {"initial_file": table, "synthetic": 150}]                         # a file's table
    plan = _run_and_compare(points, SP.Spec(points=points, chains=5, generations=3, seed=7, keep_final=True))
    assert len(plan.buckets) == 1 and plan.buckets[0].tasks == [[0, 1]]


def test_estimator_points_equal_run_and_share_a_call():
    trained = {"corpus": TALES, "order": 2, "max_contexts": 6, **SMALL, "estimator": "softmax", "steps": 3}
    points = [trained, {**trained, "learning_rate": 0.5}]
    plan = _run_and_compare(points, SP.Spec(points=points, chains=5, generations=3, seed=7, keep_final=True))
    assert [p.trained for p in plan.points] == [True, True]
    assert len(plan.buckets) == 1 and plan.buckets[0].tasks == [[0, 1]]     # vmapped over the two points


def test_settings_resolved_as_run_does_and_files_hashed_by_content(tmp_path):
    (tmp_path / "texts").mkdir()
    shutil.copy(TALES, tmp_path / "texts" / "a.txt")
    shutil.copy(TALES, tmp_path / "b.txt")
    (tmp_path / "s.toml").write_text(textwrap.dedent("""
        chains = 4
        generations = 2
        size = 300
        [[points]]
        corpus = "texts/a.txt"
        [[points]]
        corpus = "texts/a.txt"
        tokens = "words"
        max_vocab = 50
        estimator = "embedding"
        embedding_dim = 4
        hidden = 0
        warm_start = true
        [[points]]
        corpus = "texts/a.txt"
        regime = "autoregressive"
        sequence_length = 10
    """))
    a, words, ar = SP.resolve(SP.load_spec(tmp_path / "s.toml"))
    assert a.settings["corpus"] == str(tmp_path / "texts" / "a.txt")        # relative to the sweep file
    assert a.settings["initial"] == "corpus" and a.settings["order"] == 2 and not a.trained
    assert words.trained and words.corpus.tokenizer == "words" and words.settings["embedding_dim"] == 4
    assert words.settings["warm_start"] is True and words.settings["learning_rate"] == 0.1
    assert ar.trained and ar.settings["estimator"] == "count" and ar.regime.length == 10
    # the same text in another file is the same point (ids hash the file's content, not its path)
    b = SP.resolve_point({"corpus": tmp_path / "b.txt", "size": 300})
    assert (b.id, b.fold) == (a.id, a.fold)
    # a corpus's sample size defaults to its events, as in run; the order sets the contexts
    c = SP.resolve_point({"corpus": TALES, "max_contexts": 3})
    assert c.settings["synthetic"] == c.corpus.events
    d = SP.resolve_point({"corpus": TALES, "order": 3, "max_contexts": 5, "size": 50})
    assert d.initial.probs.shape[0] == 5 and all(len(label) == 2 for label in d.initial.context_labels)
    # a point whose table has another shape compiles apart (order 1: one context); orders 2 and 3 give 5 x 40
    # tables: one compilation
    plan = PL.make_plan(SP.Spec(points=[{"corpus": TALES, "order": k, "max_contexts": 5, "size": 50}
                                        for k in (1, 2, 3)], generations=2))
    assert sorted(b.points for b in plan.buckets) == [[0], [1, 2]]
    # the example sweep: its corpora found next to it, count and softmax points in one call each
    example = os.path.join(os.path.dirname(jc.__file__), "examples", "sweep-estimators.toml")
    plan = PL.make_plan(SP.load_spec(example))
    assert len(plan.points) == 4 and [len(b.points) for b in plan.buckets] == [2, 2]
    # settings of the count estimator only: the training settings do not make another point
    with pytest.raises(ConfigError, match="same settings"):
        SP.resolve(SP.Spec(points=[{"size": 5}, {"size": 5, "learning_rate": 0.5}]))


@pytest.mark.parametrize("bad, message", [
    ({"estimator": "forest"}, "estimator must be one of count, softmax, embedding"),
    ({"estimator": "softmax", "learning_rate": -1}, "learning_rate must be a number in (0.0, inf]"),
    ({"estimator": "softmax", "warm_start": "yes"}, "warm_start must be true or false"),
    ({"estimator": "softmax", "temperature": 0.5}, "temperature, top_k and top_p are not available"),
    ({"estimator": "softmax", "smoothing": 0.5}, "smoothing is not available with estimator"),
    ({"corpus": "missing.txt"}, "missing.txt"),
    ({"corpus": TALES, "order": 0}, "order must be an integer >= 1"),
    ({"corpus": TALES, "tokens": "bytes"}, "tokens must be one of chars, words"),
    ({"corpus": TALES, "initial": "zipf"}, "corpus builds the initial distribution from the text; drop initial"),
    ({"corpus": 3}, "corpus must be a string"),
    ({"initial": "file"}, "initial file needs initial_file"),
])
def test_bad_settings_name_the_setting_and_the_point(bad, message):
    spec = SP.Spec(points=[{"size": 5}, {"size": 7, **bad}])
    with pytest.raises(ConfigError) as e:
        SP.resolve(spec)
    text = str(e.value)
    assert text.startswith("point 1") and message in text and "\n" not in text


def test_command_line_refuses_a_bad_point_in_one_line(tmp_path, capsys):
    (tmp_path / "bad.toml").write_text('chains = 3\nsize = 5\n[grid]\nestimator = ["softmax", "forest"]\n')
    assert cli.main(["sweep", str(tmp_path / "bad.toml"), "--dry-run"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("jaxcollapse: error: point 1") and "estimator" in err[0]
