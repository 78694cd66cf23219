"""The thesis reproduction: everything specific to the 2020 thesis and this project's rerun of it.

The core library (`kaflib`) never imports this package (`tests/test_architecture.py`).

Modules:

* `checkpoints`: import of the ResNet20 checkpoints published with the thesis
  (`python -m kaflib.thesis.checkpoints ZIP...`), and their stored training configs;
* `audit`: the checkpoints re-attacked with the thesis' protocol and stronger attacks
  (`python -m kaflib.thesis.audit`);
* `experiment`: the presets (`thesis`, `quick`, `smoke`), parameter resolution and the
  results files of one run (what `notebooks/train.ipynb` calls);
* `parameters`: the run parameters, each defined once (the notebook's parameters cell,
  `resolve` and the grid's `-p` derive from them; `notebook_cell` writes the cell);
* `preset_images`: the CIFAR-10 images each preset means, their fingerprint and name;
* `grid`: the thesis' grids, one notebook run each (`python -m kaflib.thesis.grid`);
* `studies`: the side studies, one JSON file each (`python -m kaflib.thesis.studies`);
* `store`: where results live and how they are written, read and resumed;
* `runs`: finished runs and studies read back, and which studies rest on retrained runs;
* `results`: the results as tables next to the thesis' numbers (`reported_results.csv` of
  the thesis' materials, `store.thesis_materials_dir`);
* `statistics`: means, intervals and paired tests;
* `findings`, `verdicts`: the sentences the chapters print, computed from those tables;
* `tables`, `figures`: the tables as a reader sees them, and the book's figures.
"""
