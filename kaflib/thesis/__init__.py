"""The thesis reproduction: everything specific to the 2020 thesis and this project's rerun of it.

The core library (`kaflib`) never imports this package (`tests/test_architecture.py`).

Modules:

* `checkpoints`: import of the ResNet20 checkpoints published with the thesis
  (`python -m kaflib.thesis.checkpoints ZIP...`), and their stored training configs;
* `audit`: the checkpoints re-attacked with the thesis' protocol and stronger attacks
  (`python -m kaflib.thesis.audit`);
* `experiment`: the presets (`thesis`, `quick`, `smoke`), parameter resolution and the
  results files of one run (what `notebooks/train.ipynb` calls);
* `grid`: the thesis' grids, one notebook run each (`python -m kaflib.thesis.grid`);
* `studies`: the side studies, one JSON file each (`python -m kaflib.thesis.studies`);
* `store`: where results live and how they are written, read and resumed;
* `results`: the results as tables next to the thesis' numbers (`reported_results.csv` of
  the thesis' materials, `store.thesis_materials_dir`);
* `figures`: the book's figures of those tables.
"""
