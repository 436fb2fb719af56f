"""Stage `data`: read the configured image source, split it, save one .npz of uint8 arrays."""

from __future__ import annotations

import argparse
import logging

from pipelines.common import io
from pipelines.common.stage import Stage
from pipelines.vision import data

log = logging.getLogger("edgesmith.data")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m stages.data", description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--out", required=True, help="prepared dataset (.npz)")
    ap.add_argument("--metrics", required=True, help="metrics/data.json")
    args = ap.parse_args(argv)
    with Stage("data", args.params, sections=["data"]) as st:
        settings = st.params["data"]
        ds = data.prepare(settings, st.seed, base_dir=st.params_path.parent)
        info = data.summary(ds)
        log.info(
            "data: %d train, %d val, %d test images of %s, %d classes",
            info["train_count"], info["val_count"], info["test_count"], info["image_shape"], info["num_classes"],
        )  # fmt: skip
        with io.atomic_path(args.out) as tmp:
            ds.save(tmp)
        st.finish(info, args.metrics, extra_tags={"data.content_sha256": info["content_sha256"]})


if __name__ == "__main__":
    main()
