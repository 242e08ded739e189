"""Run storylab's SFD lmms-eval tasks with a fixed-reply model; executed by the python of a venv holding lmms-eval.

Usage: ``python lmms_driver.py TASK_FOLDER REPLY TASK [TASK ...]``; prints one JSON line: per task the
aggregated metrics, the prompts the model received, and the visuals it was handed.
"""

from __future__ import annotations

import json
import sys

from lmms_eval.api.model import lmms
from lmms_eval.evaluator import simple_evaluate
from lmms_eval.tasks import TaskManager


class FixedReply(lmms):
    """A model that answers every request with the same text and records what it was asked."""

    def __init__(self, reply: str) -> None:
        super().__init__()
        self.reply, self.seen = reply, []

    def generate_until(self, requests):
        out = []
        for req in requests:
            context, _gen_kwargs, doc_to_visual, doc_id, task, split = req.args[:6] if len(req.args) == 6 else \
                (req.args[0], req.args[1], req.args[2], req.args[4], req.args[5], req.args[6])
            visuals = doc_to_visual(self.task_dict[task][split][doc_id])
            self.seen.append({"task": task, "context": context, "visuals": visuals})
            out.append(self.reply)
        return out

    def loglikelihood(self, requests):
        raise NotImplementedError

    def generate_until_multi_round(self, requests):
        raise NotImplementedError


def main() -> None:
    folder, reply, tasks = sys.argv[1], sys.argv[2], sys.argv[3:]
    model = FixedReply(reply)
    results = simple_evaluate(model=model, tasks=tasks, task_manager=TaskManager(include_path=folder),
                              bootstrap_iters=0, log_samples=False)
    metrics = {t: {k: v for k, v in results["results"][t].items() if isinstance(v, (int, float, str))} for t in tasks}
    print("STORYLAB-JSON " + json.dumps({"metrics": metrics, "seen": model.seen}))


if __name__ == "__main__":
    main()
