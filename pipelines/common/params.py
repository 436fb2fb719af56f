"""The params schema: every knob of every stage, its type and its allowed range, and the rules
that tie keys together (`RULES`).

`load_params` reads a `params.yaml`, checks it against `SCHEMA` and `RULES` and returns plain
dicts. Anything wrong (unknown key, wrong type, out of range, missing section, bad YAML, two keys
that contradict each other) raises `ParamsError` with one line naming the key, what is allowed
and what was given. `json_schema` gives the same schema to editors.

A profile (profiles/quick) is a folder with a short `overrides.yaml`; its `params.yaml`, the file
DVC reads, is `params.yaml` with those overrides merged in (`profile_params`), written by
`edgesmith params --profile FOLDER` and checked by the tests, so the two never drift apart.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from pipelines.common.errors import ParamsError
from pipelines.edge.emulate import CORES

EMULATED_CORES = tuple(CORES)


@dataclass(frozen=True)
class Field:
    """One parameter: its type, bounds or choices, and whether null is allowed."""

    kind: str  # "int", "float", "bool", "str", "choice", "int_list", "float_list", "str_list", "table", "float_table"
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    choices: tuple[str, ...] = ()
    nullable: bool = False
    min_items: int = 0
    max_items: int | None = None
    row: tuple[tuple[str, Field], ...] = ()  # for "table": the fields of every entry
    auto: bool = False  # the string "auto" is allowed too (the stage derives the value)

    def describe(self) -> str:
        bounds = self._bounds()
        if self.kind == "table":
            text = f"a mapping of at least {self.min_items} names to entries with keys " + ", ".join(k for k, _ in self.row)
        elif self.kind == "choice":
            text = "one of " + ", ".join(repr(c) for c in self.choices)
        elif self.kind == "int_list":
            text = f"a list of at least {self.min_items} integers" + (f" each {bounds}" if bounds else "")
        elif self.kind == "float_table":
            text = "a mapping of names to mappings of names to numbers" + (f" each {bounds}" if bounds else "")
        elif self.kind == "float_list":
            count = f"{self.min_items}" if self.max_items == self.min_items else f"at least {self.min_items}"
            text = f"a list of {count} numbers" + (f" each {bounds}" if bounds else "")
        elif self.kind == "str_list":
            text = f"a list of at least {self.min_items} distinct non-empty strings"
        else:
            article = {"int": "an integer", "float": "a number", "bool": "true or false", "str": "a string"}
            text = article[self.kind] + (f" {bounds}" if bounds else "")
        return text + (", or 'auto'" if self.auto else "") + (" or null" if self.nullable else "")

    def _bounds(self) -> str:
        parts = []
        if self.low is not None:
            parts.append(f"{'>' if self.low_open else '>='} {_num(self.low)}")
        if self.high is not None:
            parts.append(f"<= {_num(self.high)}")
        return " and ".join(parts)

    def check(self, value: Any) -> bool:
        if value is None:
            return self.nullable
        if self.auto and value == "auto":
            return True
        if self.kind == "table":
            return isinstance(value, dict) and len(value) >= self.min_items
        if self.kind == "int_list":
            return (
                isinstance(value, list)
                and len(value) >= self.min_items
                and all(_is_int(v) and self._in_range(v) for v in value)
            )
        if self.kind == "float_table":
            return isinstance(value, dict) and all(
                isinstance(k, str) and isinstance(v, dict) and all(isinstance(n, str) and _is_number(x) and self._in_range(x)
                                                                   for n, x in v.items())
                for k, v in value.items()
            )  # fmt: skip
        if self.kind == "float_list":
            return (
                isinstance(value, list)
                and self.min_items <= len(value) <= (self.max_items or len(value))
                and all(_is_number(v) and self._in_range(v) for v in value)
            )
        if self.kind == "str_list":
            return (
                isinstance(value, list)
                and len(value) >= self.min_items
                and all(isinstance(v, str) and v.strip() for v in value)
                and len(set(value)) == len(value)
            )
        if self.kind == "int":
            return _is_int(value) and self._in_range(value)
        if self.kind == "float":
            return _is_number(value) and self._in_range(value)
        if self.kind == "bool":
            return isinstance(value, bool)
        if self.kind == "str":
            return isinstance(value, str) and value != ""
        if self.kind == "choice":
            return isinstance(value, str) and value in self.choices
        raise AssertionError(f"unknown field kind {self.kind}")

    def _in_range(self, value: float) -> bool:
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return self.high is None or value <= self.high


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def Int(low: float | None = None, high: float | None = None, nullable: bool = False, auto: bool = False) -> Field:
    return Field("int", low, high, nullable=nullable, auto=auto)


def Float(low: float | None = None, high: float | None = None, low_open: bool = False, nullable: bool = False) -> Field:
    return Field("float", low, high, low_open=low_open, nullable=nullable)


def Table(min_items: int = 1, **row: Field) -> Field:
    return Field("table", min_items=min_items, row=tuple(row.items()))


def Choice(*choices: str) -> Field:
    return Field("choice", choices=choices)


Bool = Field("bool")
Str = Field("str")
OptStr = Field("str", nullable=True)

SCHEMA: dict[str, dict[str, Field]] = {
    "base": {
        "seed": Int(0),
        "code_root": Str,  # path from this params file to the edgesmith sources (dvc.yaml deps)
        "mlruns_dir": Str,  # the default MLflow store lives here (relative to this params file)
        "experiment": Str,  # MLflow experiment name
    },
    "data": {
        "source": Choice("idx", "npz", "folder"),
        "path": Str,
        "val_fraction": Float(0.0, 0.5, low_open=True),
        "min_val_per_class": Int(0),  # at least this many validation images per class (at most a fifth of it)
        "test_fraction": Float(0.0, 0.5, low_open=True),  # used when the source has no test split
        "color": Choice("auto", "grayscale", "rgb"),  # auto: grayscale when every image is, else RGB
        "image_size": Field("int_list", 4, 4096, min_items=1, nullable=True),  # [side] or [height, width]: resize on load
        "class_names": Field("str_list", min_items=2, nullable=True),  # null: folder names, the .npz's, or numbers
        "max_train": Int(0),  # 0 keeps every training image; >0 takes a stratified subset
        "max_test": Int(0),
    },
    "teacher": {
        "widths": Field("int_list", 1, 1024, min_items=1, auto=True),  # one conv block per entry; auto: by input size
        "convs_per_block": Int(1, 4),
        "dropout": Float(0.0, 0.9),
        "dense_units": Int(1),
        "dense_dropout": Field("float", 0.0, 0.9, auto=True),  # auto: 0.5, less past 10 classes (train.dense_dropout)
        "bn_momentum": Float(0.0, 0.999),
        "epochs": Int(1),
        "min_steps": Int(0),  # epochs are raised until training takes at least this many optimiser steps
        "select": Choice("best_val", "last"),  # the epoch kept: highest validation accuracy, or the last
        "min_gain_over_chance": Float(0.0, 1.0),  # validation accuracy less than this above chance stops the pipeline
        "batch_size": Int(1),
        "learning_rate": Float(0.0, 1.0, low_open=True),
        "weight_decay": Float(0.0, 1.0),
        "label_smoothing": Float(0.0, 0.5),
        "augment_flip": Bool,
        "augment_shift": Int(0, 8),  # random translation by up to this many pixels
    },
    "budget": {
        # the one accuracy budget of the compression chain, checked after distill, prune and quantize;
        # `edgesmith check-budget` (CI) checks the final model of metrics/report.json against all of it
        "max_accuracy_drop": Float(0.0, 100.0),  # points below the teacher's test accuracy
        "min_accuracy": Float(0.0, 1.0),  # test accuracy, a fraction
        "max_latency_p50_ms": Float(0.0, low_open=True),  # measured p50 on the host that ran the benchmark
        "max_size_bytes": Int(1),  # .tflite file size
    },
    "student": {
        # the student family (pipelines/vision/distill.py build_student); a search JSON may override it
        "stem_widths": Field("int_list", 1, 1024, min_items=1),  # 3x3 conv + BN + ReLU + 2x2 max-pool each
        "ds_widths": Field("int_list", 1, 2048),  # depthwise-separable blocks after the stem
        "head": Choice("flatten", "gap"),  # flatten: 2x2 max-pool + flatten; gap: global average pool
        "dropout": Float(0.0, 0.9),  # before the logits
        "bn_momentum": Float(0.0, 0.999),
        "kernel_size": Int(1, 9),  # of every block's depthwise (or standard) conv; the stem stays 3x3
        "block": Choice("separable", "standard"),  # depthwise-separable / inverted residual, or a full conv
        "expansion": Int(1, 8),  # separable blocks: > 1 is an inverted residual (1x1 expand, linear projection)
        "squeeze_excite": Bool,  # SE after each block's depthwise (or standard) conv
        "width_multiplier": Float(0.0, 4.0, low_open=True),  # scales every width (rounded to multiples of 8 unless 1)
        "stem_stride": Bool,  # the first stem conv strides by 2 instead of conv + max-pool
        "stem_downsample": Int(1, 64, auto=True),  # extra stride-2 stem convs (a power of 2); auto: from the input size
    },
    "search": {
        # hardware-aware search of the student family (pipelines/vision/search/, stages/search.py)
        "oracle": Choice("evolution", "random", "bayesian", "hyperband"),
        "max_trials": Int(1),  # trials, infeasible ones included (hyperband: a cap on its own schedule)
        "max_search_seconds": Float(0.0, low_open=True, nullable=True),  # no trial starts after this (screening counts)
        "seed": Int(0, nullable=True),  # null: base.seed
        "objective": Choice("accuracy", "mnas", "constrained"),
        "choose": Choice("score", "proxy"),  # the returned trial: the best objective score, or the best NASWOT (feasible, completed)
        "mnas_target_ms": Float(0.0, low_open=True),  # MnasNet: accuracy x (latency / target) ^ mnas_weight
        "mnas_weight": Float(-1.0, 0.0),
        # constrained: hard limits (null: no limit; auto: the default student's figure at the data's
        # shape), judged on the untrained int8 conversion first, then on the trained one
        "max_latency_ms": Field("float", 0.0, None, low_open=True, nullable=True, auto=True),
        "max_size_bytes": Int(1, nullable=True, auto=True),
        "max_memory_access_bytes": Int(1, nullable=True, auto=True),
        "max_macs": Int(1, nullable=True, auto=True),
        "auto_margin": Float(0.0, 10.0),  # auto limits: the default student's figure x (1 + this)
        # measured on this host, the device profile's roofline, or its core's emulated instruction count
        "latency_source": Choice("measured", "predicted", "emulated"),
        "device": Str,  # a devices.profiles name (predicted and emulated latency)
        "screen_candidates": Int(0),  # candidates scored untrained (NASWOT) before any training; 0: no screening
        "screen_convert": Int(1),  # the best of them (proxy and MACs) costed as int8 files, the limits applied
        "screen_keep": Int(0),  # the shortlist (proxy and latency) the evolution trains first
        "proxy_batch": Int(2, 1024),  # images of the NASWOT batch
        "epochs": Int(1),  # training epochs per trial (hyperband: the most a trial gets)
        "min_steps": Int(0),  # a trial's epochs are raised until it trains at least this many steps
        "train_samples": Int(0),  # training images per trial (a seeded subset; 0: all)
        "batch_size": Int(1),
        "learning_rate": Float(0.0, 1.0, low_open=True),  # Adam, cosine decay to 0
        "population": Int(2),  # evolution: the last N completed trials are the population (aging)
        "tournament": Int(1),  # evolution: candidates drawn from the population; the best is mutated
        "hyperband_factor": Int(2, 10),
        "bench_runs": Int(1),  # measured latency: timed invoke() calls per trial ...
        "bench_seconds": Float(0.0),  # ... and at least this long
        "kernel_sizes": Field("int_list", 1, 9, min_items=1),  # the search space: kernel size of the blocks
        "blocks": Str,  # comma-separated subset of separable, standard
        "expansions": Field("int_list", 1, 8, min_items=1),  # separable blocks only
        "squeeze_excite": Choice("never", "always", "both"),
        "stem_stride": Choice("never", "always", "both"),  # the first stem conv strided instead of pooled
        "stem_downsamples": Field("int_list", 1, 64, min_items=1, auto=True),  # extra stem downsampling factors
        "width_percents": Field("int_list", 1, 400, min_items=1),  # width multiplier x 100
        "depths": Field("int_list", 0, 8, min_items=1),  # number of blocks after the stem
        "widths": Field("int_list", 1, 2048, min_items=1),  # width of each block, chosen per block
        "heads": Str,  # comma-separated subset of flatten, gap
    },
    "distill": {
        "seeds": Int(1, 20),  # baseline and distilled student trained per seed (base.seed + i)
        "workers": Int(1, 64),  # students trained side by side in worker processes (1: one after another here)
        "epochs": Int(1),
        "min_steps": Int(0),  # epochs are raised until every student trains at least this many steps
        "batch_size": Int(1),
        "learning_rate": Float(0.0, 1.0, low_open=True),  # Adam, cosine decay to 0
        "augment_flip": Bool,  # random horizontal flips (the teacher's outputs are precomputed for both views)
        "temperature": Float(0.0, 100.0, low_open=True),  # T of the Hinton term
        "alpha": Float(0.0, 1.0),  # loss = (1 - alpha) CE(labels) + alpha T^2 KL(teacher_T || student_T) + ...
        "logit_weight": Float(0.0),  # L2 between logits (Ba & Caruana)
        "dkd_target_weight": Float(0.0),  # decoupled KD: target-class term (TCKD)
        "dkd_nontarget_weight": Float(0.0),  # decoupled KD: non-target-class term (NCKD)
        "logit_standardize": Bool,  # z-score teacher and student logits per row before the Hinton term
        "hint_weight": Float(0.0),  # FitNets hints through a 1x1 adapter, per same-size feature pair
        "attention_weight": Float(0.0),  # attention transfer, per same-size feature pair
        "rkd_distance_weight": Float(0.0),  # relational KD on the embeddings feeding the logits
        "rkd_angle_weight": Float(0.0),
        "ensemble_teachers": OptStr,  # comma-separated extra teacher .keras files averaged with the teacher
        "born_again": Bool,  # the student takes the teacher's architecture (teacher section)
        "snapshot_cycles": Int(0, 100),  # > 0: add a snapshot ensemble of this many members to the teachers
        "snapshot_epochs": Int(1, 1000),  # epochs per cosine cycle of the snapshot run
        "snapshot_learning_rate": Float(0.0, 1.0, low_open=True),  # where each cycle restarts
    },
    "prune": {
        "target_sparsity": Float(0.0, 0.99),  # fraction of zeros in every prunable kernel at the end
        "schedule": Choice("polynomial", "constant"),  # PolynomialDecay from 0, or ConstantSparsity
        "m_by_n": Choice("none", "2:4"),  # structured sparsity (2 of every 4 weights zero) instead
        "epochs": Int(1),  # fine-tuning epochs while pruning
        "min_steps": Int(0),  # epochs are raised until fine-tuning takes at least this many steps
        "updates_per_epoch": Int(1),  # mask updates per epoch: frequency = steps per epoch // this
        "batch_size": Int(1),
        "learning_rate": Float(0.0, 1.0, low_open=True),
        "distill": Bool,  # fine-tune with the distillation loss (distill.alpha, temperature, logit_weight)
    },
    "quantize": {
        "representative_samples": Int(1, 100000),
        "eval_batch_size": Int(1, 100000),
        "chain_modes": OptStr,  # extra conversions of the chain's model: comma-separated dynamic, float16, qat
        "qat_epochs": Int(1),  # quantization-aware fine-tuning (pruning-preserving on a pruned model)
        "qat_min_steps": Int(0),  # qat_epochs are raised until it takes at least this many steps
        "qat_learning_rate": Float(0.0, 1.0, low_open=True),
        "float_layers": OptStr,  # Keras layer names kept in float in each model's extra `_mixed_int8` file
        "selective_max_layers": Int(0),  # at most this many layers kept in float when int8 breaks the budget
    },
    "benchmark": {
        "threads": Int(1, 256),
        "warmup_runs": Int(0),
        "min_runs": Int(1),
        "min_seconds": Float(0.0),
        "pin_cpu": Int(0, nullable=True),  # first core of the pinned set; null: no pinning
        "windows": Int(1, 1000),  # equal windows of the timed phase; p50 = lowest window median (pipelines/edge/bench.py)
    },
    "devices": {
        # mobile-class CPU profiles for the roofline latency model (pipelines/edge/cost.py)
        "profiles": Table(
            1,
            description=Str,
            peak_gmacs_fp32=Float(0.0, low_open=True),
            peak_gmacs_int8=Float(0.0, low_open=True),
            vector_efficiency=Float(0.0, 1.0, low_open=True),
            bandwidth_gbs=Float(0.0, low_open=True),
            op_overhead_us=Float(0.0),
            min_depth_fp32=Float(1.0),  # a GEMM with a shallower reduction is charged as this deep
            min_depth_int8=Float(1.0),
            source=Str,
            emulate=Field("choice", choices=EMULATED_CORES, nullable=True),  # the core arm_cost emulates; null: none
            clock_ghz=Float(0.0, low_open=True),  # estimated latency = instructions / (ipc x clock)
            ipc=Float(0.0, low_open=True),
            int8_only=Bool,  # an int8 accelerator: only files with int8 input, output and every op run on it
        ),
    },
    "target": {
        "device": Str,  # a devices.profiles name, host (this machine's measured p50), or USER@HOST (measured there)
        "int8_only": Bool,  # only files with int8 input, output and every op are eligible (or the profile's own)
        "ssh_port": Int(1, 65535, nullable=True),  # USER@HOST: the device's SSH port (null: ssh's default)
        "ssh_identity": OptStr,  # USER@HOST: private key file (null: ssh's default)
        "ssh_python": Str,  # USER@HOST: the device's Python with NumPy and a TFLite runtime
        "ssh_options": Field("str_list", min_items=1, nullable=True),  # USER@HOST: extra ssh -o KEY=VALUE options
    },
    "arm_cost": {
        "invokes": Int(2, 100),  # invoke() calls counted per file; the figure is the median after the first
    },
    "report": {
        "rank_by": Choice("size_bytes", "latency_p50_ms", "target_latency_ms"),
        "tie_tolerance": Float(0.0, 1.0),  # rank_by figures this close (relative) tie; the most accurate wins
        "final_dtypes": OptStr,  # comma-separated dtypes the final model may have (float32, dynamic, float16, int8, mixed)
        "registered_model": OptStr,  # MLflow Model Registry name the final model is registered under (null: not registered)
        "alias": Str,  # the registry alias the final model gets when within the whole budget
    },
    # ---- the graph pipeline (PyTorch Geometric) ----
    "graph": {
        "experiment": Str,  # MLflow experiment of the graph stages (kept apart from the vision runs)
        "torch_threads": Int(1, 256),  # intra-op threads of the torch stages' training
    },
    "graph_data": {
        "root": Str,  # folder holding <Class>/<Name>/raw of PyG datasets (relative to this file)
        "node_dataset": OptStr,  # a PyG dataset (Cora, Class/Name) or the path of an .npz or nodes.csv+edges.csv folder
        "graph_dataset": OptStr,  # a PyG dataset (MUTAG, Class/Name) or a folder of .npz graphs or TU text files
        "normalize_features": Bool,  # row-normalise node features (GCN's preprocessing)
        "undirected": Bool,  # list every edge in both directions (duplicates dropped)
        "split": Field("float_list", 0.0, 1.0, min_items=3, max_items=3),  # train/val/test when a node dataset has none
        "folds": Int(3, 20),  # stratified cross-validation folds for the graph dataset (fold 0 tests, 1 validates the deployed model)
    },
    "gnn_search": {
        "oracle": Choice("random", "bayesian"),
        "max_trials": Int(1),
        "epochs": Int(1),
        "seeds_per_trial": Int(1, 10),
        "max_params": Int(1, auto=True),  # trials over this are rejected before training; auto: from features and classes
        "max_trial_seconds": Float(0.0, low_open=True),  # trials still training after this are rejected
        "max_search_seconds": Float(0.0),  # no new trial starts after this long; 0: no limit
        "cost_weight": Float(0.0),  # score = val_accuracy - cost_weight * params / max_params
        "convs": Str,  # comma-separated subset of gcn, gat, sage, gin
        "layers": Field("int_list", 1, 8, min_items=1),
        "hidden": Field("int_list", 1, 4096, min_items=1),
        "heads": Field("int_list", 1, 16, min_items=1),  # GAT only
        "dropout_min": Float(0.0, 0.9),
        "dropout_max": Float(0.0, 0.9),
        "lr_min": Float(0.0, 1.0, low_open=True),
        "lr_max": Float(0.0, 1.0, low_open=True),
        "weight_decay_min": Float(0.0, 1.0, low_open=True),  # sampled on a log scale
        "weight_decay_max": Float(0.0, 1.0, low_open=True),
    },
    "gnn_train": {
        "seeds": Int(1, 100),  # node models: one run per seed, base.seed + i
        "include_searched": Bool,  # also train gnn_search's best configuration, as model 'searched'
        "node_models": Table(
            1,
            conv=Choice("gcn", "gat", "sage", "gin", "mlp"),
            hidden=Int(1, 4096),
            layers=Int(1, 8),
            heads=Int(1, 16),  # GAT hidden layers only
            dropout=Float(0.0, 0.9),
            attention_dropout=Float(0.0, 0.9),  # GAT only
            lr=Float(0.0, 1.0, low_open=True),
            weight_decay=Float(0.0, 1.0),
            weight_decay_first_only=Bool,
            epochs=Int(1),
        ),
        "graph_models": Table(
            1,
            conv=Choice("gin", "gcn", "sage", "gat"),
            hidden=Int(1, 4096),
            layers=Int(1, 8),
            readout=Choice("sum", "mean", "max"),
            layer_readout=Bool,  # predict from every layer's pooled features (GIN paper)
            dropout=Float(0.0, 0.9),
            lr=Float(0.0, 1.0, low_open=True),
            lr_step_epochs=Int(0),  # halve the learning rate every N epochs; 0: constant
            weight_decay=Float(0.0, 1.0),
            epochs=Int(1),
            batch_size=Int(1),
        ),
    },
    "gnn_distill": {
        "teacher": Str,  # a gnn_train.node_models name, 'searched', or 'best' (highest mean validation accuracy)
        "hidden": Int(1, 4096),
        "layers": Int(1, 8),
        "dropout": Float(0.0, 0.9),
        "lr": Float(0.0, 1.0, low_open=True),
        "weight_decay": Float(0.0, 1.0),
        "epochs": Int(1),
        "label_weight": Float(0.0, 1.0),  # lambda: weight of cross-entropy on true labels; 1 - lambda on the teacher
        "temperature": Float(0.0, 100.0, low_open=True),
    },
    "gnn_export": {
        "representative_samples": Int(1),  # feature rows the int8 ranges are taken from
        "fp32_tolerance": Float(0.0, low_open=True),  # max |TFLite fp32 - PyTorch| logit difference accepted
    },
    "gnn_benchmark": {
        "nodes": Int(1),  # test nodes timed one at a time, every model interleaved
        "rounds": Int(1),  # passes over those nodes
        "graphs": Int(1),  # graphs timed one at a time for the graph classifier
    },
    "gnn_report": {
        "max_accuracy_drop": Float(0.0, 100.0),  # points below the best node model still acceptable
        "rank_by": Choice("size_bytes", "latency_p50_ms"),
        # the targets checked (null: not checked); relative ones hold on any dataset
        "max_student_gap_points": Float(0.0, nullable=True),  # GLNN student below its teacher
        "min_student_gain_over_mlp_points": Float(nullable=True),  # GLNN student above the plain MLP
        "max_int8_drop_points": Float(0.0, nullable=True),  # int8 student below the fp32 student
        "max_graph_int8_drop_points": Float(0.0, nullable=True),  # int8 graph classifier below PyTorch, test graphs
        "min_per_node_speedup": Float(0.0, nullable=True),  # teacher per-node p50 / int8 student's
        "max_pipeline_seconds": Float(0.0, nullable=True),  # sum of the graph stages' durations
        "min_accuracy": Field("float_table", 0.0, 100.0),  # dataset -> model -> test accuracy %, on that dataset only
        "registered_model": OptStr,  # as report.registered_model, for the graph pipeline's final model
        "alias": Str,
    },
}


def _pairs(section: str, *pairs: tuple[str, str]) -> Callable[[dict], str | None]:
    def check(params: dict) -> str | None:
        p = params[section]
        for low, high in pairs:
            if p[low] > p[high]:
                return f"{section}.{low} ({p[low]}) must be <= {section}.{high} ({p[high]})"
        return None

    return check


def _data_image_size(params: dict) -> str | None:
    size = params["data"]["image_size"]
    if size is not None and len(size) > 2:
        return f"data.image_size must be [side] or [height, width], got {size}"
    return None


def _search_tournament(params: dict) -> str | None:
    p = params["search"]
    if p["tournament"] > p["population"]:
        return f"search.tournament ({p['tournament']}) must be <= search.population ({p['population']})"
    return None


def _search_squeeze_excite(params: dict) -> str | None:
    if params["search"]["squeeze_excite"] != "never" and "qat" in comma_list(params["quantize"]["chain_modes"], "quantize.chain_modes"):
        return ("search.squeeze_excite must be 'never' while quantize.chain_modes has qat: tfmot's "
                "quantization-aware training has no rule for squeeze-excite's Multiply layer")  # fmt: skip
    return None


def _target_device(params: dict) -> str | None:
    profiles, device = params["devices"]["profiles"], params["target"]["device"]
    if device != "host" and device not in profiles and "@" not in device:
        return (f"target.device must be host, USER@HOST or one of {', '.join(profiles)} (devices.profiles), "
                f"got {device!r}")  # fmt: skip
    return None


def _search_device(params: dict) -> str | None:
    profiles, device = params["devices"]["profiles"], params["search"]["device"]
    if device not in profiles:
        return f"search.device must be one of {', '.join(profiles)} (devices.profiles), got {device!r}"
    if params["search"]["latency_source"] == "emulated" and not profiles[device].get("emulate"):
        return f"search.latency_source emulated needs devices.profiles.{device}.emulate (the core to emulate)"
    return None


def _graph_data(params: dict) -> str | None:
    g = params["graph_data"]
    if g["node_dataset"] is None and g["graph_dataset"] is None:
        return "graph_data.node_dataset and graph_data.graph_dataset are both null: name at least one dataset"
    if abs(sum(g["split"]) - 1.0) > 1e-6 or g["split"][0] <= 0:
        return f"graph_data.split must be train, val and test fractions summing to 1 (train > 0), got {g['split']}"
    return None


# Rules between keys, checked once every section they read is loaded: (sections, check), the
# check returning the one-line error or None.
RULES: tuple[tuple[tuple[str, ...], Callable[[dict], str | None]], ...] = (
    (("data",), _data_image_size),
    (("search",), _search_tournament),
    (("search", "quantize"), _search_squeeze_excite),
    (("search", "devices"), _search_device),
    (("target", "devices"), _target_device),
    (("graph_data",), _graph_data),
    (("gnn_search",), _pairs("gnn_search", ("dropout_min", "dropout_max"), ("lr_min", "lr_max"),
                             ("weight_decay_min", "weight_decay_max"))),  # fmt: skip
)


def comma_list(text: str | None, key: str, allowed: Sequence[str] | None = None, required: bool = False) -> list[str]:
    """The items of a comma-separated params string (null or blank: none), stripped.

    ParamsError naming `key` when an item is not in `allowed`, or when `required` and there is none.
    """
    items = [item.strip() for item in (text or "").split(",") if item.strip()]
    if (required and not items) or (allowed is not None and any(item not in allowed for item in items)):
        what = f"a comma-separated subset of {', '.join(allowed)}" if allowed is not None else "a comma-separated list"
        raise ParamsError(f"{key} must be {what}, got {text!r}")
    return items


def load_params(path: str | Path, sections: list[str] | None = None) -> dict[str, dict[str, Any]]:
    """Read and validate a params file; return the requested sections (all by default)."""
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"{path}: file not found; pass --params with the path to params.yaml")
    return validate(_read_yaml(path), path.name, sections)


def _read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ParamsError(f"{path}: YAML syntax error{where}: {problem}") from None


def validate(raw: Any, name: str = "params.yaml", sections: list[str] | None = None) -> dict:
    if not isinstance(raw, dict):
        raise ParamsError(f"{name}: must be a mapping of sections ({', '.join(SCHEMA)}), got {_show(raw)}")
    for section in raw:
        if section not in SCHEMA:
            raise ParamsError(f"{name}: unknown section '{section}'; allowed: {', '.join(SCHEMA)}")
    # Every section the file has is checked, not only the ones asked for: a typo in the last
    # stage's section stops the first stage, in seconds, not an hour into the pipeline.
    wanted = set(sections or SCHEMA) | set(raw)
    out = {}
    for section in [s for s in SCHEMA if s in wanted]:
        fields = SCHEMA[section]
        values = raw.get(section)
        if not isinstance(values, dict):
            got = "nothing" if values is None else _show(values)
            raise ParamsError(f"{name}: section '{section}' must be a mapping of its keys, got {got}")
        _check_keys(values, fields, section, name)
        out[section] = dict(values)
    for needs, rule in RULES:
        if all(section in out for section in needs) and (problem := rule(out)):
            raise ParamsError(f"{name}: {problem}")
    return out if sections is None else {section: out[section] for section in sections}


def _check_keys(values: dict, fields: dict[str, Field], where: str, name: str) -> None:
    """Every key of `values` known, every field present and valid; tables are checked entry by entry."""
    for key in values:
        if key not in fields:
            raise ParamsError(f"{name}: unknown key {where}.{key}; allowed: {', '.join(fields)}")
    for key, spec in fields.items():
        if key not in values:
            raise ParamsError(f"{name}: missing key {where}.{key}, which must be {spec.describe()}")
        if not spec.check(values[key]):
            raise ParamsError(f"{name}: {where}.{key} must be {spec.describe()}, got {_show(values[key])}")
        if spec.kind == "table":
            row = dict(spec.row)
            for entry, entry_values in values[key].items():
                at = f"{where}.{key}.{entry}"
                if not isinstance(entry_values, dict):
                    raise ParamsError(f"{name}: {at} must be a mapping with keys {', '.join(row)}, got {_show(entry_values)}")
                _check_keys(entry_values, row, at, name)


def _show(value: Any) -> str:
    return repr(value) if isinstance(value, str) else json.dumps(value, default=str)


def params_hash(*sections: dict) -> str:
    """A short, stable hash of params sections (key order does not matter)."""
    blob = json.dumps(sections, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def merge(base: dict, overrides: dict) -> dict:
    """`base` with `overrides` laid over it, mapping by mapping (a table entry keeps the keys it
    does not override); any other value in `overrides` replaces the one in `base`."""
    out = dict(base)
    for key, value in overrides.items():
        out[key] = merge(base[key], value) if isinstance(value, dict) and isinstance(base.get(key), dict) else value
    return out


PROFILE_OVERRIDES = "overrides.yaml"
PROFILE_HEADER = (
    "# Written by `edgesmith params --profile {folder}`: {base} with overrides.yaml (beside this file)\n"
    "# merged in. Change overrides.yaml and run that command again; what each key does is said in {base}.\n"
)


def profile_params(folder: str | Path, base: str | Path = "params.yaml") -> str:
    """The text of a profile's params.yaml: `base` with the profile's overrides.yaml merged in,
    both checked against the schema first."""
    folder, base = Path(folder), Path(base)
    overrides_path = folder / PROFILE_OVERRIDES
    if not overrides_path.is_file():
        raise ParamsError(f"{overrides_path}: file not found; a profile is a folder with an overrides.yaml")
    load_params(base)
    overrides = _read_yaml(overrides_path) or {}
    if not isinstance(overrides, dict):
        raise ParamsError(f"{overrides_path}: must be a mapping of sections, got {_show(overrides)}")
    merged = merge(_read_yaml(base), overrides)
    validate(merged, str(overrides_path))
    header = PROFILE_HEADER.format(folder=folder.as_posix(), base=base.as_posix())
    return header + yaml.safe_dump(merged, sort_keys=False, width=120)


def _json_type(field: Field) -> dict[str, Any]:
    bounds: dict[str, Any] = {}
    if field.low is not None:
        bounds["exclusiveMinimum" if field.low_open else "minimum"] = field.low
    if field.high is not None:
        bounds["maximum"] = field.high
    if field.kind == "table":
        row = {k: _json_type(f) for k, f in field.row}
        entry = {"type": "object", "properties": row, "required": list(row), "additionalProperties": False}
        out = {"type": "object", "minProperties": field.min_items, "additionalProperties": entry}
    elif field.kind == "int_list":
        out = {"type": "array", "minItems": field.min_items, "items": {"type": "integer", **bounds}}
    elif field.kind == "float_table":
        out = {"type": "object", "additionalProperties": {"type": "object", "additionalProperties": {"type": "number", **bounds}}}
    elif field.kind == "float_list":
        out = {"type": "array", "minItems": field.min_items, "items": {"type": "number", **bounds}}
        if field.max_items is not None:
            out["maxItems"] = field.max_items
    elif field.kind == "str_list":
        out = {"type": "array", "minItems": field.min_items, "uniqueItems": True, "items": {"type": "string", "minLength": 1}}
    elif field.kind == "choice":
        out = {"enum": list(field.choices)}
    else:
        out = {"type": {"int": "integer", "float": "number", "bool": "boolean", "str": "string"}[field.kind], **bounds}
        if field.kind == "str":
            out["minLength"] = 1
    alternatives = [out] + ([{"const": "auto"}] if field.auto else []) + ([{"type": "null"}] if field.nullable else [])
    return {"anyOf": alternatives} if len(alternatives) > 1 else out


def json_schema() -> dict[str, Any]:
    """`SCHEMA` as a JSON Schema (draft 2020-12) for params.yaml, for editors and other tools.
    The rules between keys (`RULES`) are checked by edgesmith only."""
    sections = {
        name: {"type": "object", "properties": {k: _json_type(f) for k, f in fields.items()},
               "required": list(fields), "additionalProperties": False}
        for name, fields in SCHEMA.items()
    }  # fmt: skip
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "title": "edgesmith params.yaml",
            "type": "object", "properties": sections, "required": list(SCHEMA), "additionalProperties": False}  # fmt: skip
