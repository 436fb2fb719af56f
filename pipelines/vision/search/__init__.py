"""Hardware-aware architecture search over the student family, driven by keras-tuner.

The three parts keras-tuner keeps apart stay apart here: the search space (`space`, over
`build_student`'s keys), the strategy (`oracle`: random, hyperband, bayesian, or
`EvolutionOracle`, regularized evolution), and the trial (`tuner`: `ArchTuner.run_trial`, which
builds the tf-keras model itself: keras-tuner's own model handling expects Keras 3). `objective`
judges a trial, `results` reads the trials back.

A trial is judged on what would ship: its full-integer int8 TFLite file. Before training, the
untrained model is converted and its size, MACs and memory-access cost (pipelines/edge/analyze.py)
and latency (measured with pipelines/edge/bench.py, or predicted by pipelines/edge/cost.py for a
device profile) are checked against the hard limits of the `constrained` objective; a trial over
one is rejected with `FailedTrialError` (infeasible, never trained) and the search goes on. Then it
trains briefly, is converted again, scored by validation accuracy in the TFLite runtime, timed,
checked against the limits once more, and scored by the objective.

Every trial leaves `record.json` in its trial folder (status, architecture, costs, accuracy), so
infeasible trials keep their numbers and a distributed search's records sit in one place, and
`attempts.log` (one line per start: tuner id, process id, time), which shows that no trial ran twice.
"""

from pipelines.vision import tfk  # noqa: F401 - first: the Keras flavour before any keras_tuner import
from pipelines.vision.search.objective import LIMITS, OBJECTIVE, file_costs, mnas_reward, objective_score, over_limits
from pipelines.vision.search.oracle import EvolutionOracle, make_oracle
from pipelines.vision.search.results import (
    CSV_COLUMNS,
    HV_REFERENCE,
    SCREEN_COLUMNS,
    best,
    chosen,
    collect,
    csv_row,
    hypervolume,
    proxy_correlation,
    screen_row,
    summary,
    trial_metrics,
)
from pipelines.vision.search.screen import SCREENING, compute_macs, naswot, sample, screen, screened, shortlist
from pipelines.vision.search.space import (
    FINGERPRINT_SEED,
    PROBE_IMAGES,
    SEARCH_BLOCKS,
    SEARCH_HEADS,
    arch_from_values,
    build_fingerprinted,
    define_space,
    fingerprint,
    probe_batch,
    search_space,
    values_hash,
    values_of,
)
from pipelines.vision.search.tuner import (
    ATTEMPTS,
    NOT_HASHED,
    RECORD,
    ArchTuner,
    auto_limits,
    default_costs,
    project_name,
    role,
)

__all__ = [
    "ATTEMPTS", "CSV_COLUMNS", "HV_REFERENCE", "SCREENING", "SCREEN_COLUMNS", "compute_macs", "hypervolume", "naswot",
    "proxy_correlation", "sample", "screen", "screen_row", "screened", "shortlist", "FINGERPRINT_SEED", "LIMITS", "NOT_HASHED", "OBJECTIVE", "PROBE_IMAGES", "RECORD",
    "SEARCH_BLOCKS", "SEARCH_HEADS", "ArchTuner", "EvolutionOracle", "arch_from_values", "auto_limits", "best", "default_costs", "build_fingerprinted",
    "chosen", "collect", "csv_row", "define_space", "file_costs", "fingerprint", "make_oracle", "mnas_reward",
    "objective_score", "over_limits", "probe_batch", "project_name", "role", "search_space", "summary",
    "trial_metrics", "values_hash", "values_of",
]  # fmt: skip
