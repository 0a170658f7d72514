"""The lab: each claim about normalization, pooling and vanishing gradients as a measured experiment.

    normlab lab list                      # the experiments
    normlab lab show batch-size           # claim, anchor, criterion, how it is measured
    normlab lab run --all --quick         # report/index.html, report/results.json, figures
    normlab lab run covariate-shift --seeds 3 --jobs 2 --out /tmp/report

From Python: ``normlab.lab.run(["batch-size"], quick=True, out="report")``.

Layout
------
``experiment.py``   ``Experiment`` (the interface below), ``Check``, ``@register``, the registry
                    (``list_experiments``, ``get_experiment``),
                    ``vote``/``combine`` (criteria -> verdicts)
``runner.py``       ``run()``: tasks in spawned worker processes (``threads`` threads each),
                    progress bars, failure isolation, results.json with provenance
``report.py``       index.html: verdict table, one section per experiment, extra sections
``training.py``     shared pieces: ``fit`` (training loop with a test-accuracy curve),
                    ``mnist1d_cnn(norm)``, ``conv_norm``, ``auc``, ``seeded``, ``StepProgress``
``figures.py``      ``pyplot()`` (Agg), ``save``, colours per variant, ``mean_band``
``experiments/``    one module per experiment (found by a package scan)
``sections/``       extra report sections after the experiments (``@report.section``)

Adding an experiment (touches no other file)
--------------------------------------------
Create ``normlab/lab/experiments/<id with underscores>.py``::

    from normlab.lab.experiment import Check, Experiment, register
    from normlab.lab.figures import pyplot, save

    @register
    class PoolingChoice(Experiment):
        id = "pooling-choice"                 # fixed id: lower-case words joined by '-'
        order = 90                            # report position (part 1 uses 10..60)
        title = "..."; claim = "..."; anchor = "..."; method = "..."   # plain text, `code` allowed
        checks = (Check("max-beats-none", "max pooling's test accuracy is at least 5 points above no pooling",
                        lambda e: e["acc_max"] - e["acc_none"] >= 0.05),)
        quick = {"steps": 300}; full = {"steps": 3000}          # sizes, JSON values
        quick_seeds = 1                       # full mode: 5 seeds unless --seeds
        seconds = {"quick": 5.0, "full": 40.0}                  # estimate per task (progress only)

        def run_task(self, task, size, progress):              # runs in a worker process
            ... train with task["seed"], call progress(fraction) now and then ...
            return {"effect": {"acc_max": 0.78, "acc_none": 0.59}, "curves": {...}}   # JSON-friendly

        def figures(self, tasks, results, effect, size, folder):   # in the parent, after all tasks
            plt = pyplot(); figure, axis = plt.subplots(); ...; save(figure, folder / "accuracy.png")
            return [("accuracy.png", "caption")]

The runner seeds normlab's generator with ``task["seed"]`` before ``run_task``;
draw anything else from ``np.random.default_rng(task["seed"])`` (see
``training.seeded``), never from unseeded generators, so runs repeat
exactly. A task is one seed by default; override ``tasks(size, seeds)`` to
split finer (each task dict keeps a "seed") and ``seed_effects(tasks,
results, size)`` to merge the results back into one effect dict per seed.
A deterministic experiment (no randomness, e.g. gradient routing on a fixed
image) overrides ``seeds(self, quick, count=None)`` to return ``[0]``.
Effects are flat dicts of numbers (None for "not measured"). Each
``Check.holds(effect)`` is evaluated per seed and on the mean over seeds;
``vote`` makes a check reproduced when it holds on the mean and in >= 80 %
of the seeds, not reproduced (full mode only) when it fails on the mean and
holds in <= 20 %, inconclusive otherwise; ``combine`` gives the experiment
all-reproduced -> reproduced, any not-reproduced -> not reproduced.
Optional: ``measurement(effect)`` (one line for the verdict table),
``discussion(effect, size)`` (a paragraph of what the numbers show).

Report sections (e.g. the interview questions answered from the measurements)
go into ``normlab/lab/sections/<name>.py`` as ``@section(title, order)``
functions of the results document; ``report.experiment_link(id)`` links to an
experiment, ``report.text_html(text)`` escapes text.

results.json: ``{"quick", "experiments": [{"id", "claim", "anchor", "criterion",
"seeds", "effect", "verdict", "figures", ...}], "provenance": {...}}`` with,
per experiment, also ``status`` ("ok"/"failed"), ``traceback``, ``checks``,
``effect_sd``, ``effect_per_seed``, ``size``, ``task_seconds`` (wall) and
``task_cpu_seconds``, ``threads_observed`` (thread counts the workers reported), ``captions``,
``measurement``, ``discussion``.
"""
from normlab.lab.experiment import VERDICTS, Check, Experiment, get_experiment, list_experiments, register
from normlab.lab.runner import run

__all__ = ["VERDICTS", "Check", "Experiment", "register", "list_experiments", "get_experiment", "run"]
