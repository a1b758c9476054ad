#!/usr/bin/env python
"""Write the option tables of docs/adl.md and docs/lan.md from the options schema (basicsr_adl/options_schema.py).

The tables sit between ``<!-- options-table: adl (...) -->`` and ``<!-- /options-table -->`` markers; the
names, defaults and meanings come from the schema's fields, so the docs cannot drift from what the models use.

    python scripts/make_option_docs.py            # rewrite the tables
    python scripts/make_option_docs.py --check    # exit 1 if a doc's table differs from the schema
"""
import argparse
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from basicsr_adl.options_schema import DOC_TABLES, option_table, replace_table  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--check', action='store_true', help='only compare; exit 1 on a difference')
    args = parser.parse_args(argv)
    stale = []
    for name, (doc, section) in DOC_TABLES.items():
        path = os.path.join(ROOT, doc)
        with open(path) as f:
            text = f.read()
        try:
            new = replace_table(text, name, option_table(section))
        except ValueError as err:
            print(f'error: {doc}: {err}', file=sys.stderr)
            return 2
        if new != text:
            stale.append(doc)
            if not args.check:
                with open(path, 'w') as f:
                    f.write(new)
    if args.check and stale:
        print(f"option tables out of date: {', '.join(stale)} (run scripts/make_option_docs.py)", file=sys.stderr)
        return 1
    print(('up to date' if not stale else 'rewrote ' + ', '.join(stale)) if not args.check else 'up to date')
    return 0


if __name__ == '__main__':
    sys.exit(main())
