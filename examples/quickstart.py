"""Fit LowRankMF with FlowAdam on the MovieLens 100K u1 fold and report held-out RMSE.

Usage::

    python examples/quickstart.py [DATA_HOME]

DATA_HOME is the folder that contains ``ml-100k/`` or ``ml-100k.zip``. Without
it, the loader uses ``FLOWREC_DATA`` or ``~/flowrec_data``.
"""

import sys

from flowrec.datasets import load_movielens_100k_split
from flowrec.metrics import mae, rmse
from flowrec.models import LowRankMF


def main(data_home=None):
    train, test = load_movielens_100k_split("u1", data_home=data_home)
    print(f"u1 fold: {len(train):,} training and {len(test):,} test ratings")

    model = LowRankMF(optimizer="flowadam", random_state=0)
    model.fit(train[["user_id", "item_id"]], train["rating"])
    print(
        f"fitted in {model.n_epochs_} epochs and {model.n_grad_evals_} gradient evaluations"
    )

    predictions = model.predict(test[["user_id", "item_id"]])
    print(f"test RMSE {rmse(test['rating'], predictions):.4f}, MAE {mae(test['rating'], predictions):.4f}")
    print("first five test pairs:")
    print(test.head().assign(predicted=predictions[:5]).to_string(index=False))

    user = test["user_id"].iloc[0]
    print(f"top 5 unseen movies for user {user}: {model.recommend(user, k=5)}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
