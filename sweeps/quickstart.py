"""A real, small model that needs no download: a linear classifier on scikit-learn's digits.

Each trial trains for a few epochs with ``partial_fit``, streams its learning curve through
``hex.log`` and returns its best validation accuracy.
"""

from __future__ import annotations

from typing import Any

# imported in each trial's own process (the worker never imports trial code)
import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import SGDClassifier
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler


def train(hex: Any) -> dict[str, float]:
    lr = hex.log_uniform_values("lr", 1e-4, 1.0)
    alpha = hex.log_uniform_values("alpha", 1e-6, 1e-1)
    loss = hex.categorical("loss", ["hinge", "log_loss", "modified_huber"])
    epochs = hex.randint("epochs", 3, 12)
    if loss == "modified_huber":  # a conditional parameter, sampled only when it exists
        hex.uniform("epsilon", 0.05, 0.5)

    x, y = load_digits(return_X_y=True)
    x_train, x_valid, y_train, y_valid = train_test_split(x, y, test_size=0.3, random_state=0)
    scaler = StandardScaler().fit(x_train)
    x_train, x_valid = scaler.transform(x_train), scaler.transform(x_valid)
    model = SGDClassifier(loss=loss, alpha=alpha, learning_rate="constant", eta0=lr,
                          random_state=hex.id)
    classes = np.unique(y)
    best = 0.0
    for epoch in range(epochs):
        model.partial_fit(x_train, y_train, classes=classes)
        train_acc = float(model.score(x_train, y_train))
        valid_acc = float(model.score(x_valid, y_valid))
        best = max(best, valid_acc)
        hex.log(step=epoch, train_acc=train_acc, valid_acc=valid_acc)
    return {"valid_acc": best, "train_acc": train_acc}
