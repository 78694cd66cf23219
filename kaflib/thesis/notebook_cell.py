"""The command that writes the parameters cell of `notebooks/train.ipynb` from
`kaflib.thesis.experiment.RUN_PARAMETERS` (`kaflib.thesis.parameters` has the cell's text):

    python -m kaflib.thesis.parameters            # rewrite the notebook's parameters cell
    python -m kaflib.thesis.parameters --check    # exit 1 if the committed cell differs

(`python -m kaflib.thesis.notebook_cell` is the same command.)
"""

import argparse
import sys

from kaflib.thesis.experiment import RUN_PARAMETERS
from kaflib.thesis.parameters import notebook_cell, notebook_parameters_cell, write_notebook_parameters_cell

__all__ = ["main"]


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m kaflib.thesis.parameters", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--notebook", default=None, help="the notebook (default: notebooks/train.ipynb)")
    parser.add_argument("--check", action="store_true", help="only say whether the cell is up to date")
    args = parser.parse_args(argv)
    if args.check:
        current = notebook_parameters_cell(args.notebook) == notebook_cell(RUN_PARAMETERS)
        print("the parameters cell is up to date" if current else "the parameters cell is out of date")
        return 0 if current else 1
    changed = write_notebook_parameters_cell(RUN_PARAMETERS, args.notebook)
    print("rewrote the parameters cell" if changed else "the parameters cell was up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
