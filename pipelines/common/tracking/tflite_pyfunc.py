"""An MLflow pyfunc model of one .tflite file, run in the TFLite runtime.

MLflow stores this file as the model's code ("models from code") and the project's runtime loader
beside it (`code/pipelines/`), so `mlflow.pyfunc.load_model(uri).predict(x)` needs MLflow, NumPy
and the TFLite runtime only. `x`: float32 images scaled to [0, 1] (or the graph student's node
features), shaped as the signature says, or for the graph classifier a dict of its inputs (x,
adjacency, mask: `pipelines.graph.dense`); the output is the model's, dequantized to float32.
"""

import mlflow
import numpy as np
from mlflow.pyfunc import PythonModel


class TFLiteModel(PythonModel):
    def load_context(self, context):
        self.path = context.artifacts["tflite"]

    def predict(self, context, model_input, params=None):
        from pipelines.edge import evaluate

        if isinstance(model_input, dict):  # named inputs: the graph classifier's x, adjacency, mask
            return evaluate.predict(self.path, {k: np.asarray(v, np.float32) for k, v in model_input.items()}, threads=1)
        return evaluate.predict(self.path, np.asarray(model_input, dtype=np.float32), threads=1)


mlflow.models.set_model(TFLiteModel())
