"""`python -m kaflib.thesis CHECKPOINT...`: the same as `python -m kaflib.thesis.checkpoints`."""

from kaflib.thesis.checkpoints import main

main()
