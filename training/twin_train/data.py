"""Write the image list `twin preprocess --list` reads, from a dataset layout.

    python -m twin_train.data list --reader bhsig --root ../shared/data/bhsig260-bengali --out LIST.tsv
    python -m twin_train.data list --reader generic --root DIR --forged-pattern 'forg' --out LIST.tsv
    python -m twin_train.data list --reader omniglot --root images_background.zip --extract-to DIR --out LIST.tsv
    python -m twin_train.data combine --bhsig ROOT --icdar ROOT --synth DIR --out LIST.tsv
        one list over several signature collections; subjects become `<dataset>:<writer>`
        (`bhsig:001`, `icdar:013`, `synth:w0042`), the form `splits.py` selects writers by
"""

from __future__ import annotations

import argparse
from collections import Counter

from . import readers


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="action", required=True)
    lst = sub.add_parser("list", help="write a TSV image list (path, subject, kind)")
    lst.add_argument("--reader", choices=["bhsig", "cedar", "generic", "omniglot"], required=True)
    lst.add_argument("--root", required=True, help="dataset folder (for omniglot: the zip)")
    lst.add_argument("--forged-pattern", help="generic reader: regex marking forged files")
    lst.add_argument("--extract-to", help="omniglot: folder to extract the zip into (outside the repo)")
    lst.add_argument("--out", required=True)
    comb = sub.add_parser("combine", help="one list over several signature collections (prefixed subjects)")
    comb.add_argument("--bhsig", help="BHSig260 folder")
    comb.add_argument("--icdar", help="ICDAR 2011 sign_data folder")
    comb.add_argument("--synth", help="a `twin synth` folder (read with the generic reader)")
    comb.add_argument("--out", required=True)
    args = p.parse_args(argv)

    if args.action == "combine":
        samples = combine(bhsig=args.bhsig, icdar=args.icdar, synth=args.synth)
        readers.write_list(samples, args.out)
        per = Counter(s.subject.partition(":")[0] for s in samples)
        print(f"{args.out}: {len(samples)} images, {len({s.subject for s in samples})} subjects; images per collection {dict(per)}")
        return
    if args.reader == "omniglot":
        if not args.extract_to:
            raise SystemExit("--extract-to is required for omniglot")
        samples = readers.extract_omniglot(args.root, args.extract_to)
    else:
        samples = readers.read(args.reader, args.root, args.forged_pattern)
    readers.write_list(samples, args.out)
    kinds = Counter(s.kind for s in samples)
    print(f"{args.out}: {len(samples)} images, {len({s.subject for s in samples})} subjects, {dict(kinds)}")


def combine(bhsig=None, icdar=None, synth=None) -> list[readers.Sample]:
    """Samples of every given collection, subjects prefixed with the collection's name."""
    parts = [("bhsig", bhsig, readers.read_bhsig), ("icdar", icdar, readers.read_icdar),
             ("synth", synth, lambda root: readers.read_generic(root, r"-F-\d+"))]
    out = []
    for name, root, read in parts:
        if root:
            out += [readers.Sample(s.path, f"{name}:{s.subject}", s.kind) for s in read(root)]
    if not out:
        raise SystemExit("combine needs at least one of --bhsig, --icdar, --synth")
    return sorted(out)


if __name__ == "__main__":
    main()
