"""The run machinery behind `nas search` and `nas resume`: the driver loop, the results log, checkpoints, the
run-directory lock, signal handling, snapshots and scalars. It wires a strategy (`nas.strategies`) to an
evaluator (`nas.evaluate`) and owns every file of a run directory."""
