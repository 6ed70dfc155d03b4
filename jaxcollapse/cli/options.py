"""The settings of ``jaxcollapse run`` as one table (:data:`OPTIONS`): it drives the flags, the config-file keys
and the messages, and gives ``plan`` the same flags. Imports no JAX and no NumPy.
"""

from __future__ import annotations

import argparse
from typing import NamedTuple

from ..engine.settings import DEFAULT_SUPPORT, REGIME_SIZES, STUDY_DEFAULTS
from .progress import add_progress_arguments

PROG = "jaxcollapse"


class Opt(NamedTuple):
    key: str            # config-file key and argparse dest
    flags: tuple
    kind: str           # int, float, str, bool, path
    default: object     # documented default (None: see help)
    help: str
    group: str
    choices: tuple | None = None
    metavar: str | None = None


REGIME_CHOICES = tuple(REGIME_SIZES)
INITIAL_CHOICES = ("zipf", "uniform", "geometric", "dirichlet", "file")
SAMPLER_CHOICES = ("auto", "resample", "tokens", "binomial")
TOKEN_CHOICES = ("chars", "words")

DEFAULT_CHAINS = 2000
CORPUS_CHAINS = 100

OPTIONS = (
    # study
    Opt("regime", ("--regime",), "str", STUDY_DEFAULTS["regime"],
        "data regime: what each generation's model is fitted on (Seddik et al. §3.1-3.2 for the first two; all "
        "of them in the README's regime table). fully_synthetic: n fresh "
        "samples of the previous model; partially_synthetic: the same N real samples plus n synthetic; "
        "fresh_real: M samples per generation, a fraction of them synthetic, the rest fresh real; accumulate: "
        "N real plus n synthetic appended per generation; accumulate_subsample: accumulate, fit on --train "
        "samples drawn from the pool; most_recent: n/K samples from each of the last K models; "
        "random_history: each sample from a uniformly chosen earlier model; autoregressive: text generated "
        "token after token by the current model (a trained estimator's regime) (default: %(default)s)",
        "study", REGIME_CHOICES, metavar="REGIME"),
    Opt("chains", ("--chains",), "int", DEFAULT_CHAINS,
        f"independent chains (Monte Carlo replicates) (default: {DEFAULT_CHAINS}; {CORPUS_CHAINS} with --corpus)",
        "study", metavar="C"),
    Opt("generations", ("--generations", "-g"), "int", 200,
        "generations simulated after the truth p^(0) (default: %(default)s)", "study", metavar="G"),
    Opt("seed", ("--seed",), "int", 0, "random seed, integer >= 0 (default: %(default)s)", "study"),
    # initial distribution
    Opt("initial", ("--initial",), "str", STUDY_DEFAULTS["initial"],
        "initial distribution p^(0): zipf p_i ∝ i^-exponent, uniform, geometric p_i ∝ ratio^(i-1) (each on the "
        "first --support tokens of --vocab), dirichlet (rows drawn from a symmetric Dirichlet), or file "
        "(--initial-file) (default: zipf; file when --initial-file is given)", "initial distribution",
        INITIAL_CHOICES),
    Opt("vocab", ("--vocab",), "int", STUDY_DEFAULTS["vocab"], "vocabulary size, tokens (default: %(default)s)",
        "initial distribution", metavar="V"),
    Opt("support", ("--support",), "int", DEFAULT_SUPPORT,
        f"tokens with positive initial probability, zipf/uniform/geometric (default: {DEFAULT_SUPPORT}, the "
        "paper's, capped at --vocab)", "initial distribution", metavar="S"),
    Opt("exponent", ("--exponent",), "float", STUDY_DEFAULTS["exponent"],
        "Zipf exponent, >= 0 (default: %(default)s; with support 52, Σp² ≈ 0.1 as in the paper)",
        "initial distribution", metavar="A"),
    Opt("ratio", ("--ratio",), "float", STUDY_DEFAULTS["ratio"], "geometric ratio, in (0, 1] (default: %(default)s)",
        "initial distribution", metavar="R"),
    Opt("concentration", ("--concentration",), "float", STUDY_DEFAULTS["concentration"],
        "Dirichlet concentration, > 0 (default: %(default)s)", "initial distribution", metavar="A"),
    Opt("contexts", ("--contexts",), "int", STUDY_DEFAULTS["contexts"],
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
        "synthetic share, in [0, 1]: fresh_real, λ of the M samples; autoregressive, the share of each "
        "generation's -n tokens generated by the model, the rest real (default: 0.5 for fresh_real, 1 for "
        "autoregressive)", "sample sizes",
        metavar="F"),
    Opt("window", ("--window",), "int", 5,
        "most_recent: K, the number of latest models sampled (default: %(default)s)", "sample sizes",
        metavar="K"),
    Opt("train", ("--train",), "int", None,
        "accumulate_subsample: training-set size drawn from the pool, tokens (default: --real)", "sample sizes",
        metavar="T"),
    # decoding and smoothing
    Opt("temperature", ("--temperature",), "float", STUDY_DEFAULTS["temperature"],
        "sampling temperature applied before a model generates, > 0; 1 = off (default: %(default)s)",
        "decoding and smoothing", metavar="T"),
    Opt("top_k", ("--top-k",), "int", None,
        "keep only the k most probable tokens when generating, >= 1 (default: off)", "decoding and smoothing",
        metavar="K"),
    Opt("top_p", ("--top-p",), "float", None,
        "nucleus sampling: keep the most probable tokens up to mass p, in (0, 1] (default: off)",
        "decoding and smoothing", metavar="P"),
    Opt("smoothing", ("--smoothing",), "float", STUDY_DEFAULTS["smoothing"],
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
    Opt("sampler", ("--sampler",), "str", STUDY_DEFAULTS["sampler"],
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
    Opt("pdf", ("--pdf",), "bool", False, "also write each figure as PDF (default: off: PNG only)", "output"),
    Opt("quiet", ("--quiet", "-q"), "bool", False,
        "print only where the results are; no progress bar or progress lines (default: off)", "output"),
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
#: Regime -> the size keys it uses (shared with sweeps: :data:`jaxcollapse.engine.settings.REGIME_SIZES`).
REGIME_KEYS = REGIME_SIZES
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


def one_line(s) -> str:
    """A message on one line (whitespace runs, newlines included, become one space)."""
    return " ".join(str(s).split())


def number(kind):
    """An argparse ``type`` for ``"int"`` or ``"float"`` with a one-line message."""
    def parse(text):
        try:
            return int(text) if kind == "int" else float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid {'integer' if kind == 'int' else 'number'}: {text!r}")
    parse.__name__ = kind
    return parse


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
                if opt.key == "quiet":
                    add_progress_arguments(g, quiet=False)
            else:
                g.add_argument(*opt.flags, dest=opt.key, action=argparse.BooleanOptionalAction, default=None,
                               help=opt.help)
            continue
        kwargs = {"dest": opt.key, "default": None, "help": opt.help.replace("%(default)s", str(opt.default))}
        if opt.choices:
            kwargs["choices"] = opt.choices
        if opt.kind in ("int", "float"):
            kwargs["type"] = number(opt.kind)
        if opt.metavar:
            kwargs["metavar"] = opt.metavar
        g.add_argument(*opt.flags, **kwargs)

