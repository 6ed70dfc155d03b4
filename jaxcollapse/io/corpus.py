"""Real text as the truth ``p^(0)``: the n-gram table of a UTF-8 corpus.

An order-``K`` model predicts a token from the ``K - 1`` tokens before it (order 1 is the unigram model,
one context). Its maximum-likelihood fit is the empirical conditional frequency of each context
(``model.md`` §1), which is what :func:`load_corpus` returns as an :class:`~jaxcollapse.Initial`:

* tokens are characters (``"chars"``, every Unicode character including spaces and newlines) or words
  (``"words"``: runs of letters/digits/underscore, and every other non-space character on its own, so
  punctuation marks are tokens);
* the vocabulary is capped to the ``max_vocab - 1`` most frequent tokens plus an ``<unk>`` bucket that
  takes every other token (no bucket when the corpus has at most ``max_vocab`` distinct tokens);
* the ``max_contexts`` most frequent contexts are kept, with weights proportional to their frequency
  (renormalised over the kept ones); row ``j`` of the table is the distribution of the token that follows
  context ``j`` in the corpus.

``Corpus.events`` (the number of corpus tokens that follow a kept context) is the natural sample size per
generation: split over the contexts by weight, it gives each context exactly as many samples as it has in
the corpus.
"""

from __future__ import annotations

import hashlib
import os
import re
from typing import NamedTuple

import numpy as np

from ..engine.host import check_memory, table_bytes
from ..errors import ConfigError, check_int
from ..core.initial import Initial, table

TOKENIZERS = ("chars", "words")
UNK = "<unk>"
#: Default cap on the vocabulary (most frequent tokens, the last slot being ``<unk>``).
DEFAULT_MAX_VOCAB = 1000
#: Default number of (most frequent) contexts kept.
DEFAULT_MAX_CONTEXTS = 1000

_WORD = re.compile(r"\w+|[^\w\s]")


class Corpus(NamedTuple):
    """An n-gram truth built from a text.

    Attributes:
      initial: the ``(contexts, vocab)`` table with ``labels`` (tokens) and ``context_labels``.
      counts: ``(contexts,)`` int64 number of corpus tokens that follow each kept context.
      path: the corpus file (absolute), or ``None`` for a text given directly.
      sha256: hex digest of the file's bytes (of the text's UTF-8 encoding when given directly).
      order: ``K``. tokenizer: ``"chars"`` or ``"words"``.
      tokens: number of tokens in the corpus.
      events: tokens following a kept context (``counts.sum()``); the default sample size per generation.
      all_events: tokens following any context (``tokens - order + 1``).
      distinct_tokens: distinct tokens before the vocabulary cap.
      distinct_contexts: distinct contexts before the context cap.
      unk: whether an ``<unk>`` bucket was needed.
    """

    initial: Initial
    counts: np.ndarray
    path: str | None
    sha256: str
    order: int
    tokenizer: str
    tokens: int
    events: int
    all_events: int
    distinct_tokens: int
    distinct_contexts: int
    unk: bool

    def describe(self) -> str:
        c, v = self.initial.probs.shape
        name = os.path.basename(self.path) if self.path else "text"
        kept = (f"{c} most frequent of {self.distinct_contexts} contexts"
                if c < self.distinct_contexts else f"{c} contexts")
        vocab = f"{v} tokens" + (f" (incl. {UNK}, {self.distinct_tokens} distinct)" if self.unk else "")
        return (f"{name}: {self.tokens:,} {self.tokenizer}, order {self.order} ({kept}, "
                f"{self.events:,} events), vocabulary {vocab}")

    def info(self) -> dict:
        """JSON-friendly description (for the run manifest)."""
        c, v = self.initial.probs.shape
        return {"path": self.path, "sha256": self.sha256, "order": self.order, "tokens": self.tokenizer,
                "corpus_tokens": self.tokens, "events": self.events, "all_events": self.all_events,
                "distinct_tokens": self.distinct_tokens, "distinct_contexts": self.distinct_contexts,
                "contexts": c, "vocab": v, "unk": self.unk}


def read_text(path) -> tuple[str, str]:
    """The text of a UTF-8 file and the sha256 of its bytes; ConfigError if missing, unreadable or not UTF-8."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise ConfigError(f"corpus file {path} not found")
    if os.path.isdir(path):
        raise ConfigError(f"corpus {path} is a directory, not a text file")
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise ConfigError(f"cannot read corpus file {path}: {e.strerror or e}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ConfigError(f"corpus file {path} is not valid UTF-8 (bad byte 0x{raw[e.start]:02x} at offset "
                          f"{e.start}); convert it to UTF-8 first") from None
    return text, hashlib.sha256(raw).hexdigest()


def tokenize(text: str, tokenizer: str = "chars") -> list[str]:
    """Split ``text`` into character or word tokens (see the module docstring)."""
    if tokenizer == "chars":
        return list(text)
    if tokenizer == "words":
        return _WORD.findall(text)
    raise ConfigError(f"tokens must be one of {', '.join(TOKENIZERS)}; got {tokenizer!r}")


def _token_ids(text: str, tokenizer: str):
    """Unique tokens (as strings), their counts, and the token stream as indices into them."""
    if tokenizer == "chars":
        cps = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
        uniq, inverse, counts = np.unique(cps, return_inverse=True, return_counts=True)
        return [chr(int(c)) for c in uniq], counts, inverse.reshape(-1)
    words = tokenize(text, tokenizer)
    if not words:
        return [], np.zeros(0, np.int64), np.zeros(0, np.int64)
    uniq, inverse, counts = np.unique(np.array(words), return_inverse=True, return_counts=True)
    return [str(u) for u in uniq], counts, inverse.reshape(-1)


def ngram_model(text: str, order: int = 2, tokenizer: str = "chars", max_vocab: int = DEFAULT_MAX_VOCAB,
                max_contexts: int = DEFAULT_MAX_CONTEXTS, *, path: str | None = None,
                sha256: str | None = None) -> Corpus:
    """The order-``order`` n-gram truth of ``text`` (see the module docstring)."""
    order = check_int("order", order, low=1, high=64)
    max_vocab = check_int("max_vocab", max_vocab, low=2)
    max_contexts = check_int("max_contexts", max_contexts, low=1)
    if tokenizer not in TOKENIZERS:
        raise ConfigError(f"tokens must be one of {', '.join(TOKENIZERS)}; got {tokenizer!r}")
    where = f"corpus {path}" if path else "corpus"
    if not text:
        raise ConfigError(f"{where} is empty")
    names, tok_counts, stream = _token_ids(text, tokenizer)
    n_tokens = int(stream.size)
    if n_tokens == 0:
        raise ConfigError(f"{where} has no {tokenizer[:-1]} tokens")
    if n_tokens < order:
        raise ConfigError(f"{where} has {n_tokens} {tokenizer}, fewer than the order {order}")
    # Rank tokens by frequency (ties: by token), cap the vocabulary with an <unk> bucket.
    rank_order = np.argsort(-tok_counts, kind="stable")
    rank = np.empty_like(rank_order)
    rank[rank_order] = np.arange(rank_order.size)
    distinct = len(names)
    unk = distinct > max_vocab
    vocab = max_vocab if unk else distinct
    ids = rank[stream].astype(np.int64)
    if unk:
        ids = np.minimum(ids, vocab - 1)
    labels = [names[i] for i in rank_order[: vocab - 1 if unk else vocab]] + ([UNK] if unk else [])
    # Contexts: the K-1 tokens before each position K-1 .. N-1.
    nxt = ids[order - 1:]
    events_all = int(nxt.size)
    if order == 1:
        ctx_inv = np.zeros(events_all, np.int64)
        ctx_keys = np.zeros((1, 0), np.int64)
        ctx_counts = np.array([events_all], np.int64)
    else:
        windows = np.lib.stride_tricks.sliding_window_view(ids, order - 1)[: events_all]
        if (order - 1) * np.log2(max(vocab, 2)) < 62:
            code = np.zeros(events_all, np.int64)
            for j in range(order - 1):
                code = code * vocab + windows[:, j]
            uniq_code, ctx_inv, ctx_counts = np.unique(code, return_inverse=True, return_counts=True)
            ctx_keys = np.empty((uniq_code.size, order - 1), np.int64)
            rest = uniq_code.copy()
            for j in range(order - 2, -1, -1):
                ctx_keys[:, j] = rest % vocab
                rest //= vocab
        else:
            ctx_keys, ctx_inv, ctx_counts = np.unique(windows, axis=0, return_inverse=True, return_counts=True)
        ctx_inv = ctx_inv.reshape(-1)
    distinct_contexts = int(ctx_counts.size)
    keep = np.argsort(-ctx_counts, kind="stable")[:max_contexts]
    c = keep.size
    new_index = np.full(distinct_contexts, -1, np.int64)
    new_index[keep] = np.arange(c)
    row = new_index[ctx_inv]
    used = row >= 0
    check_memory(table_bytes(c, vocab), f"the {where}'s table (max_contexts -> {c} contexts x max_vocab -> {vocab} "
                 "tokens)", "lower max_vocab or max_contexts")
    counts = np.bincount(row[used] * vocab + nxt[used], minlength=c * vocab).reshape(c, vocab).astype(np.float64)
    ctx_totals = counts.sum(axis=1)
    probs = counts / ctx_totals[:, None]
    sep = "" if tokenizer == "chars" else " "
    if order == 1:
        context_labels = [""]
    else:
        context_labels = [sep.join(labels[t] for t in ctx_keys[k]) for k in keep]
    initial = table(probs, ctx_totals, labels=labels, context_labels=context_labels)
    if sha256 is None:
        sha256 = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return Corpus(initial=initial, counts=ctx_totals.astype(np.int64), path=path, sha256=sha256, order=order,
                  tokenizer=tokenizer, tokens=n_tokens, events=int(ctx_totals.sum()), all_events=events_all,
                  distinct_tokens=distinct, distinct_contexts=distinct_contexts, unk=bool(unk))


def load_corpus(path, order: int = 2, tokens: str = "chars", max_vocab: int = DEFAULT_MAX_VOCAB,
                max_contexts: int = DEFAULT_MAX_CONTEXTS) -> Corpus:
    """Read a UTF-8 text file and build its n-gram truth (:func:`ngram_model`).

    Raises ConfigError (one line) for a missing, unreadable, non-UTF-8 or empty file and for bad settings.
    """
    order = check_int("order", order, low=1, high=64)
    text, digest = read_text(path)
    return ngram_model(text, order, tokens, max_vocab, max_contexts, path=os.path.abspath(os.fspath(path)),
                       sha256=digest)


def show_label(label: str, empty: str = "(none)") -> str:
    """A printable one-line form of a token or context label (newline as ``\\n``, tab as ``\\t``)."""
    if label == "":
        return empty
    out = label.replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t").replace("\r", "\\r")
    return "".join(ch if ch.isprintable() else f"\\u{ord(ch):04x}" for ch in out)
