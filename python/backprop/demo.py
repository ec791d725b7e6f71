"""Train a 64-128-10 network on scikit-learn's bundled digits and report test accuracy.

    python -m backprop.demo [--epochs N] [--batch-size B] [--dtype float32|float64] [--seed S]
    python -m backprop.demo --help

Needs the `demo` extra (scikit-learn, which ships the 1,797 8x8 digit images; no download).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import backprop as bp


def main(argv: list[str] | None = None) -> float:
    parser = argparse.ArgumentParser(
        prog="python -m backprop.demo",
        description="Train a 64-128-10 network (ReLU, softmax cross-entropy, SGD with momentum "
        "0.9) on scikit-learn's bundled 8x8 digits (no download) and report the test accuracy. "
        "Needs scikit-learn: pip install 'backprop-core[demo]'.",
    )
    parser.add_argument(
        "--epochs", type=int, default=30, help="passes over the training images (default 30)"
    )
    parser.add_argument(
        "--batch-size", type=int, default=32, help="images per SGD step (default 32)"
    )
    parser.add_argument(
        "--dtype",
        choices=["float32", "float64"],
        default="float32",
        help="the model's floating-point type (default float32, the fast one)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seeds the initial weights and the shuffling (default 0)",
    )
    args = parser.parse_args(argv)
    try:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
    except ImportError:
        raise SystemExit(
            "python -m backprop.demo needs scikit-learn: pip install 'backprop-core[demo]'"
        ) from None

    digits = load_digits()
    X = digits.data / 16.0  # pixel intensities 0..16 -> [0, 1]
    X_train, X_test, y_train, y_test = train_test_split(
        X, digits.target, test_size=0.25, random_state=0, stratify=digits.target
    )
    model = bp.Sequential(
        [bp.Dense(64, 128, weight_init="he"), bp.ReLU(), bp.Dense(128, 10)],
        dtype=args.dtype,
        seed=args.seed,
    )
    model.compile(loss=bp.SoftmaxCrossEntropy(), optimizer=bp.SGD(lr=0.05, momentum=0.9))
    print(model)
    print(f"digits: {len(X_train)} training and {len(X_test)} test images, 10 classes")
    start = time.perf_counter()
    model.fit(
        X_train,
        y_train,
        epochs=args.epochs,
        batch_size=args.batch_size,
        validation_data=(X_test, y_test),
        verbose=1,
    )
    seconds = time.perf_counter() - start
    accuracy = float(np.mean(model.predict(X_test).argmax(axis=1) == y_test))
    print(f"trained {args.epochs} epochs in {seconds:.2f} s; test accuracy {accuracy:.2%}")
    return accuracy


if __name__ == "__main__":
    main()
