"""How `clrelu run` starts runs: its command line, the folders it checks before Hydra writes anything, and the
Hydra job that claims its folder and runs."""
