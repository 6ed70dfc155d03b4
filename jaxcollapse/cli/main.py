"""The ``jaxcollapse`` command line.

``jaxcollapse run``    simulate a study and write a results directory (``jaxcollapse run --help``).
``jaxcollapse show``   print the summary and settings of a finished run.
``jaxcollapse plot``   redraw the figures of a finished run from its files.
``jaxcollapse bench``  the benchmark of ``benchmarks/`` on whatever backend JAX sees (``jaxcollapse.bench``).

Every error (bad flag, value, file or configuration) is one line ``jaxcollapse: error: ...`` on stderr and
exit status 2.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import os
import shlex
import sys
import time
from typing import NamedTuple

from ..engine.host import available_memory
from ..errors import ConfigError, check_float, check_int

PROG = "jaxcollapse"

# Subcommands that live in their own module: name -> (module, one-line help). Each module defines
# ``add_arguments(parser)`` and ``run_command(args) -> int`` (exit status); it is imported only when the
# parser is built, so it must import JAX lazily.
COMMANDS: dict[str, tuple[str, str]] = {
    "reproduce": ("jaxcollapse.studies.paper", "rerun the paper's figures with confidence intervals and theory"),
    "plan": ("jaxcollapse.cli.plan", "how many chains a wanted precision needs, from a short pilot run"),
    "sweep": ("jaxcollapse.cli.sweep", "run a parameter sweep from a TOML file (grid of settings, bucketed vmapped calls, resumable)"),
    "sweep-plot": ("jaxcollapse.cli.sweep_plot", "draw the phase diagrams of a finished sweep"),
}

try:  # Python 3.11+
    import tomllib as _toml
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as _toml


class CLIError(Exception):
    """A command-line error: printed as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, no usage block
        raise CLIError(message)


# ------------------------------------------------------------------------------------------------
# the settings of ``run``: one table drives the flags, the config-file keys and the checks


class Opt(NamedTuple):
    key: str            # config-file key and argparse dest
    flags: tuple
    kind: str           # int, float, str, bool, path
    default: object     # documented default (None: see help)
    help: str
    group: str
    choices: tuple | None = None
    metavar: str | None = None


REGIME_CHOICES = ("fully_synthetic", "partially_synthetic", "fresh_real", "accumulate", "accumulate_subsample",
                  "most_recent", "random_history", "autoregressive")
INITIAL_CHOICES = ("zipf", "uniform", "geometric", "dirichlet", "file")
SAMPLER_CHOICES = ("auto", "resample", "tokens", "binomial")
TOKEN_CHOICES = ("chars", "words")

#: Chains whose models are recorded every generation for the simplex picture (3-token vocabularies), and the
#: most memory those records may take.
TRAJECTORY_CHAINS = 8
TRAJECTORY_BYTES = 64 << 20
DEFAULT_CHAINS = 2000
CORPUS_CHAINS = 100
DEFAULT_SUPPORT = 52

OPTIONS = (
    # study
    Opt("regime", ("--regime",), "str", "fully_synthetic",
        "data regime: what each generation's model is fitted on (model.md §2). fully_synthetic: n fresh "
        "samples of the previous model; partially_synthetic: the same N real samples plus n synthetic; "
        "fresh_real: M samples per generation, a fraction of them synthetic, the rest fresh real; accumulate: "
        "N real plus n synthetic appended per generation; accumulate_subsample: accumulate, fit on --train "
        "samples drawn from the pool; most_recent: n/K samples from each of the last K models; "
        "random_history: each sample from a uniformly chosen earlier model (default: %(default)s)",
        "study", REGIME_CHOICES, metavar="REGIME"),
    Opt("chains", ("--chains",), "int", DEFAULT_CHAINS,
        f"independent chains (Monte Carlo replicates) (default: {DEFAULT_CHAINS}; {CORPUS_CHAINS} with --corpus)",
        "study", metavar="C"),
    Opt("generations", ("--generations", "-g"), "int", 200,
        "generations simulated after the truth p^(0) (default: %(default)s)", "study", metavar="G"),
    Opt("seed", ("--seed",), "int", 0, "random seed, integer >= 0 (default: %(default)s)", "study"),
    # initial distribution
    Opt("initial", ("--initial",), "str", "zipf",
        "initial distribution p^(0): zipf p_i ∝ i^-exponent, uniform, geometric p_i ∝ ratio^(i-1) (each on the "
        "first --support tokens of --vocab), dirichlet (rows drawn from a symmetric Dirichlet), or file "
        "(--initial-file) (default: zipf; file when --initial-file is given)", "initial distribution",
        INITIAL_CHOICES),
    Opt("vocab", ("--vocab",), "int", 600, "vocabulary size, tokens (default: %(default)s)",
        "initial distribution", metavar="V"),
    Opt("support", ("--support",), "int", DEFAULT_SUPPORT,
        f"tokens with positive initial probability, zipf/uniform/geometric (default: {DEFAULT_SUPPORT}, the "
        "paper's, capped at --vocab)", "initial distribution", metavar="S"),
    Opt("exponent", ("--exponent",), "float", 1.1,
        "Zipf exponent, >= 0 (default: %(default)s; with support 52, Σp² ≈ 0.1 as in the paper)",
        "initial distribution", metavar="A"),
    Opt("ratio", ("--ratio",), "float", 0.5, "geometric ratio, in (0, 1] (default: %(default)s)",
        "initial distribution", metavar="R"),
    Opt("concentration", ("--concentration",), "float", 1.0,
        "Dirichlet concentration, > 0 (default: %(default)s)", "initial distribution", metavar="A"),
    Opt("contexts", ("--contexts",), "int", 1,
        "contexts of a dirichlet table (rows drawn independently, equal weights) (default: %(default)s)",
        "initial distribution", metavar="C"),
    Opt("initial_seed", ("--initial-seed",), "int", None,
        "seed of the Dirichlet draw (default: --seed)", "initial distribution", metavar="SEED"),
    Opt("initial_file", ("--initial-file",), "path", None,
        "probability vector (vocab,) or table (contexts, vocab) of next-token distributions, rows summing to 1: "
        ".npy, .csv or .txt (comma or whitespace separated, # comments), or .npz with 'probs' and optional "
        "'weights' (default: none)", "initial distribution", metavar="FILE"),
    # sizes
    Opt("synthetic", ("-n", "--synthetic"), "int", 100,
        "n, synthetic samples per generation (tokens; split over contexts by weight) (default: 100; with "
        "--corpus, the corpus's token count)", "sample sizes", metavar="n"),
    Opt("real", ("--real",), "int", 100,
        "N, real samples (partially_synthetic, accumulate, accumulate_subsample), or M, samples per generation "
        "(fresh_real) (tokens) (default: 100; with --corpus, the corpus's token count)", "sample sizes",
        metavar="N"),
    Opt("fraction", ("--fraction",), "float", 0.5,
        "fresh_real: synthetic share λ of the M samples, in [0, 1] (default: %(default)s)", "sample sizes",
        metavar="F"),
    Opt("window", ("--window",), "int", 5,
        "most_recent: K, the number of latest models sampled (default: %(default)s)", "sample sizes",
        metavar="K"),
    Opt("train", ("--train",), "int", None,
        "accumulate_subsample: training-set size drawn from the pool, tokens (default: --real)", "sample sizes",
        metavar="T"),
    # decoding and smoothing
    Opt("temperature", ("--temperature",), "float", 1.0,
        "sampling temperature applied before a model generates, > 0; 1 = off (default: %(default)s)",
        "decoding and smoothing", metavar="T"),
    Opt("top_k", ("--top-k",), "int", None,
        "keep only the k most probable tokens when generating, >= 1 (default: off)", "decoding and smoothing",
        metavar="K"),
    Opt("top_p", ("--top-p",), "float", None,
        "nucleus sampling: keep the most probable tokens up to mass p, in (0, 1] (default: off)",
        "decoding and smoothing", metavar="P"),
    Opt("smoothing", ("--smoothing",), "float", 0.0,
        "add-alpha pseudo-count per token in every fit, >= 0; 0 = maximum likelihood (default: %(default)s)",
        "decoding and smoothing", metavar="ALPHA"),
    # real text
    Opt("corpus", ("--corpus",), "path", None,
        "UTF-8 text file: use its n-gram model as p^(0) (one row per context, weights = context frequency) "
        "(default: none)", "real text", metavar="FILE.txt"),
    Opt("order", ("--order",), "int", 2,
        "n-gram order K: contexts of K-1 tokens; 1 = unigram (default: %(default)s)", "real text", metavar="K"),
    Opt("tokens", ("--tokens",), "str", "chars", "tokens: characters or words (default: %(default)s)",
        "real text", TOKEN_CHOICES),
    Opt("max_vocab", ("--max-vocab",), "int", 1000,
        "vocabulary cap: the V-1 most frequent tokens plus <unk> (default: %(default)s)", "real text",
        metavar="V"),
    Opt("max_contexts", ("--max-contexts",), "int", 1000,
        "keep the most frequent contexts, weights renormalised (default: %(default)s)", "real text", metavar="C"),
    # engine
    Opt("sampler", ("--sampler",), "str", "auto",
        "sampler: resample (picks parents among the training samples; cost ∝ samples, plain fits only), "
        "tokens (inverse CDF; cost ∝ samples), binomial (cost ∝ vocab), auto (default: %(default)s)",
        "engine", SAMPLER_CHOICES),
    Opt("chunk_size", ("--chunk-size",), "int", None,
        "chains per compiled call; results do not depend on it (default: from --memory)", "engine", metavar="CHAINS"),
    Opt("memory", ("--memory",), "float", 1024.0,
        "device-memory budget for choosing the chunk size, MiB (default: 1024)", "engine", metavar="MIB"),
    Opt("devices", ("--devices",), "str", "all",
        "local devices the chunks are spread over: all, or a number N (the first N devices of the default "
        "backend); results do not depend on it (default: all)", "engine", metavar="N|all"),
    Opt("per_context", ("--per-context",), "bool", False,
        "keep per-context traces (saved as per-context means over chains) (default: off; on with --corpus)",
        "engine"),
    Opt("traces", ("--traces",), "bool", True,
        "keep per-chain traces; --no-traces keeps only the summary and collapse times (default: on)", "engine"),
    Opt("final", ("--final",), "bool", None,
        "keep the final models of every chain (default: when they take at most 512 MiB)", "engine"),
    # output
    Opt("out", ("--out", "-o"), "path", None,
        "results directory; must be new, empty, or a previous run with --overwrite (default: "
        "runs/<timestamp>-<regime>/)", "output", metavar="DIR"),
    Opt("overwrite", ("--overwrite",), "bool", False, "replace the run already in --out (default: off)", "output"),
    Opt("plots", ("--plots",), "bool", True, "draw the figures into DIR/plots (default: on; --no-plots)",
        "output"),
    Opt("quiet", ("--quiet", "-q"), "bool", False,
        "print only where the results are; no progress bar (default: off)", "output"),
    # trained estimators and autoregressive generation (jaxcollapse.trained, jaxcollapse.autoregressive)
    Opt("estimator", ("--estimator",), "str", "count",
        "how each generation's model is fitted: count (normalised counts, the engine), softmax (logits table "
        "trained with optax), embedding (neural n-gram: shared token embeddings, tanh layer, softmax) "
        "(default: %(default)s)", "trained estimators", ("count", "softmax", "embedding")),
    Opt("optimizer", ("--optimizer",), "str", "adam", "optax optimizer (default: %(default)s)",
        "trained estimators", ("adam", "sgd", "momentum", "rmsprop", "adagrad")),
    Opt("learning_rate", ("--learning-rate",), "float", 0.1, "learning rate, > 0 (default: %(default)s)",
        "trained estimators", metavar="LR"),
    Opt("steps", ("--steps",), "int", 100, "optimizer steps per generation, >= 1 (default: %(default)s)",
        "trained estimators"),
    Opt("batch", ("--batch",), "int", 0,
        "tokens per minibatch drawn from the generation's tokens, >= 0; 0 = whole generation (default: "
        "%(default)s)", "trained estimators", metavar="B"),
    Opt("weight_decay", ("--weight-decay",), "float", 0.0, "decoupled weight decay, >= 0 (default: %(default)s)",
        "trained estimators", metavar="WD"),
    Opt("label_smoothing", ("--label-smoothing",), "float", 0.0,
        "label smoothing in [0, 1) (default: %(default)s)", "trained estimators", metavar="EPS"),
    Opt("embedding_dim", ("--embedding-dim",), "int", 16, "embedding size d, >= 1 (default: %(default)s)",
        "trained estimators", metavar="D"),
    Opt("hidden", ("--hidden",), "int", 64, "tanh hidden units of the embedding model, >= 0 (default: %(default)s)",
        "trained estimators", metavar="H"),
    Opt("combine", ("--combine",), "str", "concat", "how context embeddings are combined (default: %(default)s)",
        "trained estimators", ("concat", "sum")),
    Opt("warm_start", ("--warm-start",), "bool", False,
        "start each generation's training from the previous parameters (default: off)", "trained estimators"),
    Opt("floor", ("--floor",), "float", 1e-6,
        "a token of a trained model with probability <= floor counts as lost, in [0, 1) (default: %(default)s)",
        "trained estimators", metavar="P"),
    Opt("sequence_length", ("--sequence-length",), "int", 64,
        "autoregressive: tokens per generated text, >= 1 (default: %(default)s)", "trained estimators",
        metavar="L"),
)
BY_KEY = {o.key: o for o in OPTIONS}
#: Regime -> the size keys it uses.
REGIME_KEYS = {
    "fully_synthetic": ("synthetic",),
    "partially_synthetic": ("real", "synthetic"),
    "fresh_real": ("real", "fraction"),
    "accumulate": ("real", "synthetic"),
    "accumulate_subsample": ("real", "synthetic", "train"),
    "most_recent": ("synthetic", "window"),
    "random_history": ("synthetic",),
    "autoregressive": ("synthetic", "fraction"),
}
INITIAL_KEYS = {
    "zipf": ("vocab", "support", "exponent"),
    "uniform": ("vocab", "support"),
    "geometric": ("vocab", "support", "ratio"),
    "dirichlet": ("vocab", "concentration", "contexts", "initial_seed"),
    "file": ("initial_file",),
    "corpus": ("corpus", "order", "tokens", "max_vocab", "max_contexts"),
}
TRAINED_KEYS = ("optimizer", "learning_rate", "steps", "batch", "weight_decay", "label_smoothing", "embedding_dim",
                "hidden", "combine", "warm_start", "floor", "sequence_length")
SIZE_KEYS = ("synthetic", "real", "fraction", "window", "train")
DISTRIBUTION_KEYS = ("vocab", "support", "exponent", "ratio", "concentration", "contexts", "initial_seed",
                     "initial_file", "corpus", "order", "tokens", "max_vocab", "max_contexts")


def flag_name(key: str) -> str:
    """The flag of a setting, for messages (``--top-k``, ``-n/--synthetic``)."""
    opt = BY_KEY.get(key)
    return "/".join(opt.flags) if opt and key == "synthetic" else (opt.flags[0] if opt else key)


def _range_checks(cfg: dict) -> None:
    """Check every value given, whether or not the chosen regime or distribution uses it."""
    positive_int = ("chains", "generations", "vocab", "support", "contexts", "synthetic", "real", "window",
                    "train", "chunk_size", "top_k", "order", "max_contexts")
    for k in positive_int:
        if cfg.get(k) is not None:
            check_int(flag_name(k), cfg[k], low=1)
    for k in ("seed", "initial_seed"):
        if cfg.get(k) is not None:
            check_int(flag_name(k), cfg[k], low=0, high=2**63 - 1)
    if cfg.get("max_vocab") is not None:
        check_int(flag_name("max_vocab"), cfg["max_vocab"], low=2)
    floats = {
        "fraction": dict(low=0.0, high=1.0), "temperature": dict(low=0.0, low_open=True),
        "top_p": dict(low=0.0, high=1.0, low_open=True), "smoothing": dict(low=0.0), "exponent": dict(low=0.0),
        "ratio": dict(low=0.0, high=1.0, low_open=True), "concentration": dict(low=0.0, low_open=True),
        "memory": dict(low=0.0, low_open=True),
    }
    for k, rng in floats.items():
        if cfg.get(k) is not None:
            check_float(flag_name(k) + (" (MiB)" if k == "memory" else ""), cfg[k], **rng)


# ------------------------------------------------------------------------------------------------
# config files


def load_config(path: str) -> dict:
    """Read a TOML config: keys are the long flag names (``top_k`` or ``top-k``); relative paths are relative
    to the file's directory. ConfigError for unreadable or invalid files, unknown keys and wrong types."""
    try:
        with open(path, "rb") as f:
            data = _toml.load(f)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} not found") from None
    except IsADirectoryError:
        raise ConfigError(f"config file {path} is a directory") from None
    except OSError as e:
        raise ConfigError(f"cannot read config file {path}: {e.strerror or e}") from None
    except _toml.TOMLDecodeError as e:
        raise ConfigError(f"invalid TOML in config file {path}: {_one_line(str(e))}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path} is not valid UTF-8") from None
    base = os.path.dirname(os.path.abspath(path))
    out = {}
    for raw_key, value in data.items():
        key = raw_key.replace("-", "_")
        opt = BY_KEY.get(key)
        if opt is None:
            known = ", ".join(o.key for o in OPTIONS)
            raise ConfigError(f"unknown key {raw_key!r} in config file {path} (known keys: {known})")
        out[key] = _typed(opt, value, f"config key {raw_key!r} in {path}")
        if opt.kind == "path":
            out[key] = os.path.normpath(os.path.join(base, os.path.expanduser(out[key])))
    return out


def _typed(opt: Opt, value, where: str):
    if opt.kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where} must be an integer, got {value!r}")
    elif opt.kind == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where} must be a number, got {value!r}")
        value = float(value)
    elif opt.kind == "bool":
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false, got {value!r}")
    else:
        if not isinstance(value, str):
            raise ConfigError(f"{where} must be a string, got {value!r}")
        if opt.choices and value not in opt.choices:
            raise ConfigError(f"{where} must be one of {', '.join(opt.choices)}; got {value!r}")
    return value


def _one_line(s: str) -> str:
    return " ".join(str(s).split())


# ------------------------------------------------------------------------------------------------
# parsers


def _number(kind):
    def parse(text):
        try:
            return int(text) if kind == "int" else float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid {'integer' if kind == 'int' else 'number'}: {text!r}")
    parse.__name__ = kind
    return parse


_RUN_EPILOG = """\
config file (--config FILE.toml): the same settings as keys, named like the long flags (top_k or top-k),
e.g.
    regime = "partially_synthetic"
    real = 100
    synthetic = 10
    chains = 1000
    traces = false
Flags given on the command line override the file; relative paths in the file are relative to it.

results (DIR): summary.csv (generation,metric,mean,sd,ci_low,ci_high,n), traces.npz (per-chain traces,
collapse times, final models), collapse.csv, contexts.csv (several contexts), plots/, manifest.json
(configuration, versions, command line; written last). Metrics: collision (Σp²), max_prob, l1_initial,
l1_first, entropy (nats), support (tokens alive), missing_mass, kl (KL(p0||p), nats, +inf once a token is lost).
"""


def add_options(parser: argparse.ArgumentParser, skip: set | frozenset = frozenset()) -> None:
    """Add the flags of ``run`` (the ``OPTIONS`` table, by group) to ``parser``, except the keys in ``skip``."""
    groups = {}
    for opt in OPTIONS:
        if opt.key in skip:
            continue
        g = groups.get(opt.group) or groups.setdefault(opt.group, parser.add_argument_group(opt.group))
        if opt.kind == "bool":
            if opt.key in ("overwrite", "quiet"):
                g.add_argument(*opt.flags, dest=opt.key, action="store_true", default=None, help=opt.help)
            else:
                g.add_argument(*opt.flags, dest=opt.key, action=argparse.BooleanOptionalAction, default=None,
                               help=opt.help)
            continue
        kwargs = {"dest": opt.key, "default": None, "help": opt.help.replace("%(default)s", str(opt.default))}
        if opt.choices:
            kwargs["choices"] = opt.choices
        if opt.kind in ("int", "float"):
            kwargs["type"] = _number(opt.kind)
        if opt.metavar:
            kwargs["metavar"] = opt.metavar
        g.add_argument(*opt.flags, **kwargs)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="Monte Carlo engine for model collapse: recursive training of "
                     "categorical / n-gram language models (Seddik et al., arXiv 2404.05090).")
    from .. import __version__
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    names = ["run", "show", "plot", "bench", *COMMANDS]
    sub = parser.add_subparsers(dest="command", metavar="{" + ",".join(names) + "}", parser_class=_Parser)
    run = sub.add_parser("run", help="simulate a study and write a results directory",
                         description="Simulate many independent chains of recursive training and write a results "
                         "directory (default study: the paper's fully synthetic setting, Zipf(1.1) on 52 of "
                         "600 tokens, n = 100, 2000 chains, 200 generations).",
                         epilog=_RUN_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    run.add_argument("--config", metavar="FILE.toml", default=None,
                     help="read settings from a TOML file; flags given explicitly override it")
    add_options(run)
    show = sub.add_parser("show", help="print the summary table and settings of a finished run",
                          description="Print the summary table and settings of a finished run, read back from "
                          "its files.")
    show.add_argument("dir", metavar="DIR", help="run directory")
    show.add_argument("--rows", type=_number("int"), default=8, help="generations shown (default: 8)")
    show.add_argument("--metrics", default=None,
                      help="comma-separated metrics to show (default: collision,max_prob,l1_initial,support,"
                      "entropy,kl)")
    plot = sub.add_parser("plot", help="redraw the figures of a finished run into DIR/plots",
                          description="Redraw the figures of a finished run from its saved files into DIR/plots "
                          "(traces, collapse, contexts for several contexts, simplex for 3-token vocabularies).")
    plot.add_argument("dir", metavar="DIR", help="run directory")
    plot.add_argument("--format", default="png,pdf", help="comma-separated formats (default: png,pdf)")
    sub.add_parser("bench", help="benchmarks (jaxcollapse.bench; arguments passed on)", add_help=False)
    for name, (module, help_) in COMMANDS.items():
        mod = importlib.import_module(module)
        p = sub.add_parser(name, help=help_, description=getattr(mod, "DESCRIPTION", help_),
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        mod.add_arguments(p)
    return parser


# ------------------------------------------------------------------------------------------------
# resolving a run's settings


class Plan(NamedTuple):
    resolved: dict          # effective settings (only those that matter for this study)
    given: dict             # flags and config file, as given
    initial: object         # jaxcollapse.Initial
    regime: object
    decoding: object
    corpus: object          # Corpus or None
    describe_initial: str
    keep_final: bool
    warnings: list


def _initial_from_file(path: str):
    import numpy as np

    from ..core.initial import table

    if not os.path.exists(path):
        raise ConfigError(f"initial file {path} not found")
    if os.path.isdir(path):
        raise ConfigError(f"initial file {path} is a directory")
    ext = os.path.splitext(path)[1].lower()
    weights = None
    try:
        if ext == ".npy":
            probs = np.load(path, allow_pickle=False)
        elif ext == ".npz":
            with np.load(path, allow_pickle=False) as z:
                if "probs" not in z.files:
                    raise ConfigError(f"initial file {path} must hold an array named 'probs' (and optionally "
                                      f"'weights'); found {', '.join(z.files) or 'nothing'}")
                probs = z["probs"]
                weights = z["weights"] if "weights" in z.files else None
        elif ext in (".csv", ".txt", ".tsv", ".dat", ""):
            with open(path, encoding="utf-8") as f:
                text = f.read()
            first = next((ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")), "")
            probs = np.loadtxt(path, delimiter="," if "," in first else None, ndmin=1, comments="#")
        else:
            raise ConfigError(f"initial file {path}: unknown extension {ext!r} (use .npy, .npz, .csv or .txt)")
    except ConfigError:
        raise
    except UnicodeDecodeError:
        raise ConfigError(f"initial file {path} is not a UTF-8 text file") from None
    except (OSError, ValueError) as e:
        raise ConfigError(f"cannot read initial file {path}: {_one_line(e)}") from None
    if np.size(probs) == 0:
        raise ConfigError(f"initial file {path} is empty")
    try:
        return table(probs, weights)
    except ConfigError as e:
        raise ConfigError(f"initial file {path}: {e}") from None


def resolve(flags: dict, config_path: str | None) -> Plan:
    """Merge config file and flags, apply defaults, validate, build the initial distribution and regime."""
    from ..core import initial as init_mod
    from ..io.corpus import load_corpus
    from ..core.regimes import Decoding, Regime

    file_cfg = load_config(config_path) if config_path else {}
    cfg = {**file_cfg, **{k: v for k, v in flags.items() if v is not None}}
    given = {"flags": {k: v for k, v in flags.items() if v is not None}, "config_file": config_path,
             "config_file_settings": file_cfg or None}
    _range_checks(cfg)
    warnings = []
    # which distribution
    if cfg.get("corpus") is not None:
        if cfg.get("initial") not in (None,):
            raise ConfigError("--corpus builds the initial distribution from the text; drop --initial")
        if cfg.get("initial_file") is not None:
            raise ConfigError("give either --corpus or --initial-file, not both")
        source = "corpus"
    elif cfg.get("initial_file") is not None:
        if cfg.get("initial", "file") != "file":
            raise ConfigError(f"--initial-file needs --initial file (got --initial {cfg['initial']})")
        source = "file"
    else:
        source = cfg.get("initial", "zipf")
        if source == "file":
            raise ConfigError("--initial file needs --initial-file FILE")
    regime_kind = cfg.get("regime", BY_KEY["regime"].default)
    res = {"regime": regime_kind, "initial": source}
    corpus = None
    seed = cfg.get("seed", 0)
    if source == "corpus":
        corpus = load_corpus(cfg["corpus"], cfg.get("order", 2), cfg.get("tokens", "chars"),
                             cfg.get("max_vocab", 1000), cfg.get("max_contexts", 1000))
        initial = corpus.initial
        res.update(corpus=corpus.path, order=corpus.order, tokens=corpus.tokenizer,
                   max_vocab=cfg.get("max_vocab", 1000), max_contexts=cfg.get("max_contexts", 1000))
        describe = corpus.describe()
    elif source == "file":
        path = os.path.abspath(cfg["initial_file"])
        initial = _initial_from_file(path)
        res["initial_file"] = path
        c, v = initial.probs.shape
        describe = f"{os.path.basename(path)} ({c} context{'s' if c > 1 else ''} × {v} tokens)"
    else:
        vocab = cfg.get("vocab", 600)
        res["vocab"] = vocab
        if source == "dirichlet":
            conc = cfg.get("concentration", 1.0)
            contexts = cfg.get("contexts", 1)
            iseed = cfg.get("initial_seed", seed)
            initial = init_mod.dirichlet(iseed, vocab, conc, contexts)
            res.update(concentration=conc, contexts=contexts, initial_seed=iseed)
            describe = f"dirichlet(concentration={conc:g}, vocab={vocab}, contexts={contexts}, seed={iseed})"
        else:
            support = cfg.get("support", min(DEFAULT_SUPPORT, vocab))
            if support > vocab:
                raise ConfigError(f"support must be at most vocab ({vocab}), got {support}")
            res["support"] = support
            if source == "zipf":
                exponent = cfg.get("exponent", 1.1)
                initial = init_mod.zipf(vocab, exponent, support)
                res["exponent"] = exponent
                describe = f"zipf(exponent={exponent:g}, support={support}, vocab={vocab})"
            elif source == "uniform":
                initial = init_mod.uniform(vocab, support)
                describe = f"uniform(support={support}, vocab={vocab})"
            elif source == "geometric":
                ratio = cfg.get("ratio", 0.5)
                initial = init_mod.geometric(vocab, ratio, support)
                res["ratio"] = ratio
                describe = f"geometric(ratio={ratio:g}, support={support}, vocab={vocab})"
            else:
                raise ConfigError(f"initial must be one of {', '.join(INITIAL_CHOICES)}; got {source!r}")
    used = set(INITIAL_KEYS[source])
    for k in DISTRIBUTION_KEYS:
        if k in cfg and k not in used and k in flags and flags[k] is not None:
            warnings.append(f"--{k.replace('_', '-')} is not used by --initial {source}; ignored")
    # sizes
    needs = REGIME_KEYS[regime_kind]
    default_size = corpus.events if corpus is not None else 100
    sizes = {}
    for k in needs:
        if k in ("synthetic", "real"):
            sizes[k] = cfg.get(k, default_size)
        elif k == "fraction":
            sizes[k] = cfg.get(k, 0.5)
        elif k == "window":
            sizes[k] = cfg.get(k, 5)
        elif k == "train":
            sizes[k] = cfg.get(k)
    for k in SIZE_KEYS:
        if k in flags and flags[k] is not None and k not in needs:
            warnings.append(f"--{k if k != 'synthetic' else 'synthetic/-n'} is not used by regime {regime_kind}; "
                            "ignored")
    if regime_kind == "autoregressive" or cfg.get("estimator", "count") != "count":
        from ..core.trained import cli_settings

        regime = cli_settings(cfg, regime_kind, sizes, res)
        if cfg.get("traces") is False:
            warnings.append("--no-traces is not available with --estimator softmax|embedding or --regime "
                            "autoregressive; the traces are kept")
    else:
        regime = Regime(regime_kind, **sizes)
        warnings += [f"{BY_KEY[k].flags[0]} applies to --estimator softmax|embedding or --regime autoregressive; "
                     "ignored" for k in TRAINED_KEYS if flags.get(k) is not None]
    res.update({k: v for k, v in sizes.items() if v is not None})
    temperature = cfg.get("temperature", 1.0)
    decoding = Decoding(temperature, cfg.get("top_k"), cfg.get("top_p"))
    res.update(temperature=temperature, top_k=cfg.get("top_k"), top_p=cfg.get("top_p"),
               smoothing=cfg.get("smoothing", 0.0))
    res.update(chains=cfg.get("chains", CORPUS_CHAINS if corpus is not None else DEFAULT_CHAINS),
               generations=cfg.get("generations", 200), seed=seed, sampler=cfg.get("sampler", "auto"),
               chunk_size=cfg.get("chunk_size"), memory=cfg.get("memory", 1024.0),
               per_context=cfg.get("per_context", corpus is not None),
               traces=cfg.get("traces", True), final=cfg.get("final"), plots=cfg.get("plots", True))
    res["devices"] = _devices_setting(cfg.get("devices"))
    c, v = initial.probs.shape
    keep_final = res["final"] if res["final"] is not None else res["chains"] * c * v * 8 <= 1 << 29
    plan = Plan(res, given, initial, regime, decoding, corpus, describe, bool(keep_final), warnings)
    return plan


def _devices_setting(value) -> str | None:
    """``--devices``: ``all`` or a positive number of devices (checked against the devices JAX sees at run time)."""
    if value is None:
        return None
    text = str(value).strip().lower()
    if text == "all":
        return "all"
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise ConfigError(f"--devices must be 'all' or a number of devices >= 1; got {value!r}")
    return str(n)


def _local_devices(setting: str | None):
    """The devices of ``--devices`` (a ConfigError naming the flag and the available count if there are fewer)."""
    import jax

    local = jax.local_devices()
    if setting in (None, "all"):
        return local
    if int(setting) > len(local):
        raise ConfigError(f"--devices must be 'all' or a number from 1 to {len(local)} (the {jax.default_backend()} "
                          f"devices of this process); got {setting}")
    return local[: int(setting)]


def rerun_command(res: dict) -> str:
    """A self-contained command line for the resolved settings (no config file; a new output directory)."""
    parts = [PROG, "run"]
    for opt in OPTIONS:
        if opt.key not in res or opt.key in ("out", "overwrite", "quiet"):
            continue
        value = res[opt.key]
        if value is None:
            continue
        flag = opt.flags[-1] if opt.flags[-1].startswith("--") else opt.flags[0]
        if opt.key == "synthetic":
            flag = "-n"
        if opt.kind == "bool":
            if value != opt.default:
                parts.append(flag if value else "--no-" + flag[2:])
            continue
        if opt.key == "initial" and value == "corpus":
            continue
        if opt.key == "initial" and value == "file":
            continue
        parts += [flag, f"{value:g}" if isinstance(value, float) else str(value)]
    return shlex.join(parts)


# ------------------------------------------------------------------------------------------------
# memory


def host_bytes(chains: int, generations: int, contexts: int, vocab: int, *, traces: bool, per_context: bool,
               final: bool, metrics: int = 8) -> int:
    """Host memory a run holds: per-chain traces, per-context traces, final models and collapse records."""
    width = generations + 1
    total = chains * contexts * 8 * 2 + chains * 8
    if traces:
        total += chains * width * metrics * 8
    if per_context:
        total += chains * width * contexts * metrics * 8
    if final:
        total += chains * contexts * vocab * 8
    return total


def _size(b: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if b < 1024 or unit == "TiB":
            return f"{b:.0f} {unit}" if unit == "bytes" else f"{b:.1f} {unit}"
        b /= 1024
    return f"{b} bytes"


# ------------------------------------------------------------------------------------------------
# progress


class Progress:
    """A one-line progress bar on a TTY: chain-generations done, rate and ETA."""

    def __init__(self, stream, width: int = 28):
        self.stream = stream
        self.width = width
        self.t0 = time.perf_counter()
        self.first = None
        self.last_len = 0
        self._write("  compiling …")

    def _write(self, text: str) -> None:
        pad = max(0, self.last_len - len(text))
        self.stream.write("\r" + text + " " * pad)
        self.stream.flush()
        self.last_len = len(text)

    def __call__(self, done: int, total: int) -> None:
        now = time.perf_counter()
        self.calls = getattr(self, "calls", 0) + 1
        # the first two reports include the compilations (start, then first segment): measure after them
        if self.calls <= 2 or self.first is None:
            self.first = (now, done)
        t1, d1 = self.first
        rate = (done - d1) / (now - t1) if now > t1 and done > d1 else None
        frac = done / total if total else 1.0
        fill = int(round(frac * self.width))
        bar = "█" * fill + "·" * (self.width - fill)
        if rate:
            eta = (total - done) / rate
            tail = f"{_rate(rate)} chain-gen/s  ETA {_clock(eta)}"
        else:
            tail = "warming up"
        self._write(f"  [{bar}] {100 * frac:5.1f}%  {tail}")

    def close(self) -> None:
        self._write("")
        self.stream.write("\r")
        self.stream.flush()


def _rate(r: float) -> str:
    if r >= 1e6:
        return f"{r / 1e6:.2f}M"
    if r >= 1e3:
        return f"{r / 1e3:.1f}k"
    return f"{r:.0f}"


def _clock(s: float) -> str:
    s = int(round(s))
    h, rest = divmod(s, 3600)
    m, sec = divmod(rest, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


# ------------------------------------------------------------------------------------------------
# trajectories for the simplex picture


def record_trajectories(seed: int, initial, regime, decoding, smoothing: float, sampler: str, generations: int,
                        chains: int):
    """Models ``(chains, G+1, contexts, vocab)`` of the first ``chains`` chains, drawn with the keys the engine
    uses (``fold_in(key, i)`` for chain ``i``, ``fold_in(., m)`` in generation ``m``)."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    from jax import lax

    from ..core import count as kernel

    from ..core import resample
    with jax.enable_x64(True):
        config, params = kernel.build(initial, regime, generations=generations, decoding=decoding,
                                      smoothing=smoothing, sampler=sampler)
        params = jax.tree.map(jnp.asarray, params)
        key = jax.random.key(seed)
        engine = resample if config.sampler == "resample" else kernel

        def model(s):
            return resample.model(s, params, config) if engine is resample else s.model

        def one(i):
            k = jax.random.fold_in(key, i)
            p0 = kernel.init(k, params, config).model
            s1 = engine.first_step(jax.random.fold_in(k, 1), engine.init(k, params, config), params, config)

            def body(s, m):
                s = engine.next_step(jax.random.fold_in(k, m), s, params, config)
                return s, model(s)

            _, rest = lax.scan(body, s1, jnp.arange(2, generations + 1))
            return jnp.concatenate([p0[None], model(s1)[None], rest], axis=0)

        out = jax.jit(jax.vmap(one))(jnp.arange(chains, dtype=jnp.uint32))
        return np.asarray(out)


# ------------------------------------------------------------------------------------------------
# commands


def _default_out(regime: str) -> str:
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    base = os.path.join("runs", f"{stamp}-{regime}")
    out, i = base, 2
    while os.path.exists(out):
        out = f"{base}-{i}"
        i += 1
    return out


def _warn(msg: str) -> None:
    print(f"{PROG}: warning: {msg}", file=sys.stderr)


def cmd_run(args: argparse.Namespace, argv: list[str]) -> int:
    import numpy as np

    from ..core import count as kernel
    from ..io.rundir import check_out_dir, format_contexts, context_stats, save_result, theory_for, theory_lines

    import jax

    flags = {o.key: getattr(args, o.key) for o in OPTIONS}
    plan = resolve(flags, args.config)
    res = plan.resolved
    devices = _local_devices(res["devices"])
    # In a jax.distributed job every process simulates its share; process 0 alone prints and writes.
    primary = jax.process_index() == 0
    quiet = bool(flags.get("quiet") or (plan.given["config_file_settings"] or {}).get("quiet")) or not primary
    overwrite = bool(flags.get("overwrite") or (plan.given["config_file_settings"] or {}).get("overwrite"))
    file_out = (plan.given["config_file_settings"] or {}).get("out")
    out = flags.get("out") or file_out
    for w in plan.warnings:
        if not quiet:
            _warn(w)
    initial = plan.initial
    c, v = initial.probs.shape
    chains, generations = res["chains"], res["generations"]
    # validate everything the engine checks before any output or compilation
    trained = "estimator" in res
    if trained:
        from ..core.trained import cli_build, cli_simulate
        cli_build(plan)
    else:
        kernel.build(initial, plan.regime, generations=generations, decoding=plan.decoding,
                     smoothing=res["smoothing"], sampler=res["sampler"])
    # host memory
    per_context = res["per_context"]
    need = host_bytes(chains, generations, c, v, traces=res["traces"], per_context=per_context,
                      final=plan.keep_final)
    avail = available_memory()
    if avail is not None and need > 0.8 * avail and per_context and "per_context" not in _explicit(plan):
        per_context = res["per_context"] = False
        need = host_bytes(chains, generations, c, v, traces=res["traces"], per_context=False, final=plan.keep_final)
        if not quiet:
            _warn("per-context traces would not fit in memory; running without them (collapse times per context "
                  "are still recorded)")
    if avail is not None and need > 0.8 * avail:
        parts = {"--no-traces": host_bytes(chains, generations, c, v, traces=True, per_context=False, final=False),
                 "--no-per-context": host_bytes(chains, generations, c, v, traces=False, per_context=per_context,
                                                final=False),
                 "--no-final": host_bytes(chains, generations, c, v, traces=False, per_context=False,
                                          final=plan.keep_final)}
        hints = [flag for flag, b in parts.items() if b > need / 10] or ["--no-traces"]
        raise ConfigError(f"this run needs about {_size(need)} of host memory for its results but only "
                          f"{_size(avail)} is available; use {', '.join(hints)}, fewer --chains or fewer "
                          "--generations")
    if out is None and primary:
        out = _default_out(res["regime"])
    if primary:
        check_out_dir(out, overwrite)
    command = rerun_command(res)
    if not quiet:
        s0 = float((initial.probs ** 2).sum(axis=1) @ initial.weights)
        print(f"{PROG} run: {plan.regime.describe()} · {plan.describe_initial} · Σp² = {s0:.4g} · "
              f"{chains} chains × {generations} generations · seed {res['seed']}")
        if plan.corpus is not None:
            size = res.get("synthetic", res.get("real"))
            how = ("the corpus tokens that follow a kept context: each context is refitted on its corpus count"
                   if size == plan.corpus.events else "split over the contexts by frequency")
            print(f"sample size per generation: {size:,} tokens ({how})")
    progress = None
    if not quiet and sys.stderr.isatty():
        progress = Progress(sys.stderr)
    from ..engine.simulate import simulate
    launcher = cli_simulate(plan) if trained else simulate

    t0 = time.perf_counter()
    try:
        result = launcher(res["seed"], initial, plan.regime, chains=chains, generations=generations,
                          decoding=plan.decoding, smoothing=res["smoothing"], sampler=res["sampler"],
                          chunk_size=res["chunk_size"], memory=int(res["memory"] * 2**20),
                          per_context=per_context, keep_traces=res["traces"], keep_final=plan.keep_final,
                          progress=progress, devices=devices)
    finally:
        if progress is not None:
            progress.close()
    if not primary:
        return 0
    if not quiet:
        print(result.format())
        for line in theory_lines(result, theory_for(result.settings, initial, generations)):
            print(line)
        if c > 1:
            stats = context_stats(result.context_collapse_time, result.collapse_token, initial, generations)
            print(format_contexts(stats, initial, generations, chains))
        sys.stdout.flush()
    trajectories = None
    extra = {"initial_description": plan.describe_initial}
    k = min(chains, TRAJECTORY_CHAINS, TRAJECTORY_BYTES // ((generations + 1) * c * 3 * 8))
    if v == 3 and k >= 1 and not trained:
        trajectories = record_trajectories(res["seed"], initial, plan.regime, plan.decoding, res["smoothing"],
                                           res["sampler"], generations, k)
        if result.final is not None:
            extra["trajectories_match_final"] = bool(np.array_equal(trajectories[:, -1], result.final[:k]))
    if plan.corpus is not None:
        extra["corpus"] = plan.corpus.info()
    config = dict(res)
    config["initial_description"] = plan.describe_initial
    manifest = save_result(result, out, config, argv, initial=initial, given=plan.given, command=command,
                           extra=extra, trajectories=trajectories, overwrite=overwrite)
    plot_files = []
    if res["plots"]:
        from ..io.plots import plot_run
        from ..io.rundir import add_to_manifest, load_run

        plot_files = plot_run(load_run(out))
        add_to_manifest(out, plots=[os.path.relpath(p, out) for p in plot_files])
    total = time.perf_counter() - t0
    if not quiet:
        rate = chains * generations / max(result.wall_time, 1e-9)
        dev = manifest.get("jax", {})
        print(f"simulated in {result.wall_time:.1f} s, compilation included ({_rate(rate)} chain-generations/s) "
              f"on {dev.get('backend')} (device: {dev.get('device_kind')}); {total:.1f} s with saving and plots")
    names = ["summary.csv", "traces.npz", "collapse.csv"] + (["contexts.csv"] if c > 1 else []) \
        + (["plots/"] if plot_files else []) + ["manifest.json"]
    print(f"results: {out}{os.sep} ({', '.join(names)})")
    return 0


def _explicit(plan: Plan) -> set:
    keys = set(plan.given["flags"])
    keys |= set(plan.given["config_file_settings"] or {})
    return keys


def cmd_show(args) -> int:
    from ..core.metrics import METRICS
    from ..io.rundir import context_stats, format_contexts, load_run, theory_lines

    run = load_run(args.dir)
    res = run.result
    m = run.manifest
    metrics = ("collision", "max_prob", "l1_initial", "support", "entropy", "kl")
    if args.metrics:
        metrics = tuple(x.strip() for x in args.metrics.split(",") if x.strip())
        bad = [x for x in metrics if x not in res.summary]
        if bad:
            raise ConfigError(f"unknown metric {bad[0]!r}; known: {', '.join(METRICS)}")
    rows = check_int("rows", args.rows, low=1)
    cfg = run.config
    print(f"run: {os.path.abspath(run.path)}")
    print(f"created {m.get('created')} with jaxcollapse {m.get('versions', {}).get('jaxcollapse')} "
          f"(jax {m.get('versions', {}).get('jax')}, backend {m.get('jax', {}).get('backend')}, device "
          f"{m.get('jax', {}).get('device_kind')}); simulated in {float(m.get('wall_time_s') or 0):.1f} s")
    print(f"study: {res.settings.get('regime')} · {cfg.get('initial_description', '')} · {res.chains} chains × "
          f"{res.generations} generations · seed {m.get('seed')}")
    skip = {"initial_description"}
    items = [f"{k}={v}" for k, v in cfg.items() if k not in skip and v is not None]
    print("settings: " + " ".join(items))
    if m.get("command"):
        print(f"rerun: {m['command']}")
    print(res.format(metrics=metrics, rows=rows))
    for line in theory_lines(res, run.theory):
        print(line)
    if run.initial is not None and res.context_collapse_time.shape[1] > 1:
        stats = context_stats(res.context_collapse_time, res.collapse_token, run.initial, res.generations)
        print(format_contexts(stats, run.initial, res.generations, res.chains))
    return 0


def cmd_plot(args) -> int:
    from ..io.plots import plot_run
    from ..io.rundir import add_to_manifest, load_run

    formats = tuple(f.strip().lower() for f in args.format.split(",") if f.strip())
    bad = [f for f in formats if f not in ("png", "pdf", "svg")]
    if bad or not formats:
        raise ConfigError(f"--format must list png, pdf or svg; got {args.format!r}")
    run = load_run(args.dir)
    files = plot_run(run, formats=formats)
    add_to_manifest(run.path, plots=[os.path.relpath(p, run.path) for p in files])
    for f in files:
        print(f)
    return 0


def cmd_bench(argv: list[str]) -> int:
    from ..bench import suite as bench
    return int(bench.main(argv, prog=f"{PROG} bench") or 0)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``jaxcollapse`` command; returns the exit status."""
    raw = list(sys.argv[1:] if argv is None else argv)
    try:
        if raw and raw[0] == "bench":
            return cmd_bench(raw[1:])
        parser = build_parser()
        args = parser.parse_args(raw)
        if args.command is None:
            parser.print_help()
            return 0
        if args.command == "run":
            return cmd_run(args, [PROG] + raw)
        if args.command == "show":
            return cmd_show(args)
        if args.command == "plot":
            return cmd_plot(args)
        if args.command in COMMANDS:
            mod = importlib.import_module(COMMANDS[args.command][0])
            return int(mod.run_command(args) or 0)
        raise CLIError(f"unknown command {args.command!r}")
    except (CLIError, ConfigError, ValueError, OSError) as e:
        msg = _one_line(e) if not isinstance(e, OSError) or not e.strerror else _os_message(e)
        print(f"{PROG}: error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except RuntimeError as e:
        if "RESOURCE_EXHAUSTED" in str(e) or "out of memory" in str(e).lower():
            print(f"{PROG}: error: the device ran out of memory; lower --memory or --chunk-size", file=sys.stderr)
            return 2
        raise


def _os_message(e: OSError) -> str:
    where = f": {e.filename}" if e.filename else ""
    return _one_line(f"{e.strerror}{where}")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
