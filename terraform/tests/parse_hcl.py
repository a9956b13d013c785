"""Dumps .tf files as JSON for test/integration/terraform.test.ts: {"<path>": <python-hcl2's dict>, ...}.

Usage: python parse_hcl.py <file.tf>... (run with the python of the pinned python-hcl2 venv, infra/tools.ts).
"""

import json
import sys

import hcl2


def main(paths):
    out = {}
    for path in paths:
        with open(path, encoding="utf-8") as f:
            out[path] = hcl2.load(f)
    json.dump(out, sys.stdout, default=str)


if __name__ == "__main__":
    main(sys.argv[1:])
