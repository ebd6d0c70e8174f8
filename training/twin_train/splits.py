"""Writer splits over one or several signature collections.

A combined image list names each subject `<dataset>:<writer>` (`bhsig:001`, `icdar:013`,
`synth:w0042`), so one cache can hold every collection and a split is a *spec*: comma-separated
terms `[DATASET:]SELECTOR`, where SELECTOR is

- `train`, `val` or `test`: that collection's fixed split (`SPLITS` below);
- `LO-HI`: the writers whose number lies in [LO, HI] (`bhsig:51-60`);
- `*`: every writer of the collection.

A term without `DATASET:` selects unprefixed subjects (a single-collection cache, as
signature-v1's): `51-60` is BHSig's validation writers there.

The splits are fixed and writer-disjoint (`check_disjoint`, and pytest checks it):
- BHSig260-Bengali: 001–050 train, 051–060 validation, 061–100 test (as for signature-v1);
- ICDAR 2011 sign_data (64 writers): 38 train, 10 validation, 16 test (59 / 16 / 25 %), drawn
  once by `random.Random(2011).shuffle` of the sorted writer ids and written out here, so the
  split never depends on the code that drew it;
- synthetic writers (`twin synth`): training only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .readers import Sample

SEP = ":"

ICDAR_TRAIN = (
    "001 006 009 012 014 015 018 021 022 023 027 028 032 033 034 036 039 040 041 "
    "042 043 045 046 048 049 051 052 053 054 055 056 058 061 062 066 067 068 069"
).split()
ICDAR_VAL = "013 017 026 030 031 035 038 044 059 060".split()
ICDAR_TEST = "002 003 004 016 019 020 024 025 029 037 047 050 057 063 064 065".split()

BHSIG_RANGES = {"train": (1, 50), "val": (51, 60), "test": (61, 100)}

# Dataset names as they appear in subjects, and their display names for reports.
NAMES = {"bhsig": "BHSig260-Bengali", "icdar": "ICDAR 2011 sign_data", "synth": "twin synth"}


def split_of(dataset: str, writer: str) -> str | None:
    """The fixed split a writer of a collection belongs to, or None."""
    if dataset == "bhsig":
        try:
            n = int(writer)
        except ValueError:
            return None
        return next((k for k, (lo, hi) in BHSIG_RANGES.items() if lo <= n <= hi), None)
    if dataset == "icdar":
        for name, ids in (("train", ICDAR_TRAIN), ("val", ICDAR_VAL), ("test", ICDAR_TEST)):
            if writer in ids:
                return name
        return None
    if dataset == "synth":
        return "train"
    return None


def subject_parts(subject: str) -> tuple[str, str]:
    """`bhsig:001` -> ("bhsig", "001"); an unprefixed subject has dataset ""."""
    dataset, sep, writer = subject.partition(SEP)
    return (dataset, writer) if sep else ("", subject)


@dataclass(frozen=True)
class Term:
    dataset: str  # "" for unprefixed subjects
    selector: str  # train | val | test | * | LO-HI

    def matches(self, subject: str) -> bool:
        dataset, writer = subject_parts(subject)
        if dataset != self.dataset:
            return False
        if self.selector == "*":
            return True
        if self.selector in ("train", "val", "test"):
            return split_of(dataset or "bhsig", writer) == self.selector
        lo, hi = parse_range(self.selector)
        try:
            return lo <= int(writer.lstrip("w") or "x") <= hi
        except ValueError:
            return False


def parse_range(text: str) -> tuple[int, int]:
    """"51-60" -> (51, 60)."""
    try:
        lo, hi = (int(x) for x in text.split("-"))
    except ValueError as e:
        raise ValueError(f"writer range must look like 51-60, got {text!r}") from e
    if lo > hi:
        raise ValueError(f"writer range {text!r} is empty")
    return lo, hi


def parse(spec: str) -> list[Term]:
    terms = []
    for raw in filter(None, (t.strip() for t in spec.split(","))):
        dataset, sep, selector = raw.partition(SEP)
        if not sep:
            dataset, selector = "", raw
        if selector not in ("train", "val", "test", "*"):
            parse_range(selector)  # raises with the reason
        terms.append(Term(dataset, selector))
    if not terms:
        raise ValueError(f"empty writer spec {spec!r}; e.g. bhsig:train,icdar:train or 51-60")
    return terms


def select(samples: list[Sample], spec: str) -> np.ndarray:
    """Indices of the samples whose subject any term of `spec` selects."""
    terms = parse(spec)
    return np.array([i for i, s in enumerate(samples) if any(t.matches(s.subject) for t in terms)], dtype=np.int64)


def by_dataset(samples: list[Sample], spec: str) -> dict[str, np.ndarray]:
    """`select`, grouped by collection (in the order the spec names them)."""
    idx = select(samples, spec)
    groups: dict[str, list[int]] = {}
    for t in parse(spec):
        groups.setdefault(t.dataset, [])
    for i in idx:
        groups[subject_parts(samples[int(i)].subject)[0]].append(int(i))
    return {k: np.array(v, dtype=np.int64) for k, v in groups.items() if v}


def check_disjoint(samples: list[Sample], specs: dict[str, str]) -> None:
    """Raises if any writer is selected by two of the named specs (e.g. train and val)."""
    seen: dict[str, str] = {}
    for name, spec in specs.items():
        for i in select(samples, spec):
            subject = samples[int(i)].subject
            other = seen.setdefault(subject, name)
            if other != name:
                raise ValueError(f"writer {subject} is in both the {other} and the {name} split")
