"""The study notes' interview questions, answered from this report's own measurements.

Every number comes from the results document the page is built from, so the
answers change with the run. An answer cites an experiment only when the
experiment is in the run and finished: a sentence whose numbers are missing
(experiment absent, failed, or without that effect) is left out, and the
textbook answer stands alone with a note saying which experiment would have
measured it.
"""
from __future__ import annotations

import html
from typing import Callable

from normlab.lab.report import experiment_link, section

_SKIPPED = (KeyError, TypeError, ValueError, ZeroDivisionError)


class Facts:
    """The finished experiments of a results document: their effect numbers and one-line measurements."""

    def __init__(self, document: dict) -> None:
        self.records = {record["id"]: record for record in document.get("experiments", [])
                        if record.get("status", "ok") == "ok" and record.get("effect")}

    def __contains__(self, name: str) -> bool:
        return name in self.records

    def __getitem__(self, name: str) -> dict:
        """The mean effect of experiment ``name`` (KeyError when it is not in the run or failed)."""
        return self.records[name]["effect"]

    def measurement(self, name: str) -> str:
        return self.records[name]["measurement"]


def _points(value: float) -> str:
    return f"{value * 100:.1f} points"


def _answer(facts: Facts, textbook: str, evidence: list[tuple[str, Callable[[Facts], str]]]) -> str:
    """The textbook sentence, then every evidence sentence whose numbers exist, each linked to its experiment."""
    sentences, missing = [], []
    for name, build in evidence:
        try:
            sentence = build(facts)
        except _SKIPPED:
            if name not in missing:
                missing.append(name)
            continue
        sentences.append(f"{html.escape(sentence)} ({experiment_link(name)})")
    body = html.escape(textbook) + (" In this run: " + " ".join(sentences) if sentences else "")
    absent = [name for name in missing if name not in facts]
    if absent:
        body += (" <span class=\"meta\">(No result in this run from: " + ", ".join(html.escape(n) for n in absent)
                 + ".)</span>")
    return f"<p>{body}</p>"


def _bn_defects() -> tuple[str, list]:
    textbook = ("BN's statistics come from the mini-batch, so it degrades when batches are small, cannot train "
                "on a single example, behaves differently in training (batch statistics) and at inference "
                "(running averages), and does not carry over to recurrent nets evaluated on longer sequences "
                "than it saw.")
    return textbook, [
        ("batch-size", lambda f: (
            f"From batch 32 to batch 2 BN's test error went from {f['batch-size']['err_batch_32']:.1%} to "
            f"{f['batch-size']['err_batch_2']:.1%}, while GroupNorm's moved from "
            f"{f['batch-size']['err_group_32']:.1%} to {f['batch-size']['err_group_2']:.1%}.")),
        ("online-learning", lambda f: (
            ("At batch size 1 BatchNorm refused to train (" if f["online-learning"]["bn_raises_at_1"] >= 0.5
             else "At batch size 1 BatchNorm did not refuse (") +
            f"LayerNorm reached {f['online-learning']['acc_layer_1']:.1%}), and BN trained at batch 2 showed a "
            f"train-minus-eval accuracy gap of {_points(f['online-learning']['gap_2'])} against "
            f"{_points(f['online-learning']['gap_32'])} at batch 32.")),
        ("rnn-normalization", lambda f: f"Recurrent nets: {f.measurement('rnn-normalization')}."),
        ("covariate-shift", lambda f: (
            f"Its usual explanation is also in doubt: noisy BN, which shifts the distributions on purpose, "
            f"ended at {f['covariate-shift']['mnist1d_final_noisy']:.1%} on MNIST-1D against BN's "
            f"{f['covariate-shift']['mnist1d_final_batch']:.1%}.")),
    ]


def _other_remedies() -> tuple[str, list]:
    textbook = ("Initialise for the activation (He et al. 2015), add identity shortcuts (He et al. 2016), clip "
                "the gradient norm against explosion (Pascanu et al. 2013), use gated recurrent units, or, "
                "historically, pretrain layer by layer before fine-tuning.")
    return textbook, [
        ("vanishing-gradients", lambda f: (
            f"With 30 ReLU layers the training loss fell by {f['vanishing-gradients']['loss_drop_xavier']:.0%} "
            f"with Xavier's initialisation and by {f['vanishing-gradients']['loss_drop_he']:.0%} with He's.")),
        ("vanishing-gradients", lambda f: (
            f"Identity shortcuts lifted the 20-layer sigmoid net's first-to-last gradient ratio from "
            f"10^{f['vanishing-gradients']['log_ratio_sigmoid']:.0f} to "
            f"10^{f['vanishing-gradients']['log_ratio_residual']:.1f} and its test accuracy from "
            f"{f['vanishing-gradients']['acc_sigmoid']:.0%} to {f['vanishing-gradients']['acc_residual']:.0%}; "
            f"greedy pretraining gave {f['vanishing-gradients']['acc_pretrained']:.0%} (20 layers) and "
            f"{f['vanishing-gradients']['acc_pretrained5']:.0%} (5 layers, against "
            f"{f['vanishing-gradients']['acc_sigmoid5']:.0%} from random weights).")),
        ("vanishing-gradients", lambda f: (
            f"Clipping: the tanh RNN's gradient norm reached {f['vanishing-gradients']['rnn_max_grad_norm']:.3g}; "
            f"its final loss was {f['vanishing-gradients']['rnn_loss_clipped']:.3f} with clipping against "
            f"{f['vanishing-gradients']['rnn_loss_unclipped']:.3f} without.")),
    ]


def _bn_sigmoid() -> tuple[str, list]:
    textbook = ("Yes. BN keeps sigmoid inputs near the linear range only when its gain is moderate and the "
                "weights break the symmetry between units; all-zero weights or a large gain defeat it.")
    return textbook, [
        ("bn-sigmoid", lambda f: (
            f"With all-zero weights every unit of a layer stayed identical (largest weight difference "
            f"{f['bn-sigmoid']['zeros_unit_spread']:.2g}) and test accuracy stayed at "
            f"{f['bn-sigmoid']['acc_zeros']:.0%}.")),
        ("bn-sigmoid", lambda f: (
            f"A BN gain of 10 saturated {f['bn-sigmoid']['saturated_large_gain']:.0%} of the sigmoids and changed "
            f"the first-to-last gradient ratio from 10^{f['bn-sigmoid']['log_ratio_default']:.1f} to "
            f"10^{f['bn-sigmoid']['log_ratio_large_gain']:.1f}; test accuracy "
            f"{f['bn-sigmoid']['acc_large_gain']:.0%} against {f['bn-sigmoid']['acc_default']:.0%} at gain 1, "
            f"where {f['bn-sigmoid']['linear_share_default']:.0%} of the sigmoid inputs stayed in [-2, 2].")),
    ]


def _pooling_backward() -> tuple[str, list]:
    textbook = ("Pooling has no parameters; its backward routes each output's gradient to its window: max (min) "
                "pooling sends all of it to the winning input recorded in the forward pass, average pooling "
                "splits it evenly, and inputs shared by overlapping windows add up what they receive.")
    return textbook, [
        ("pooling-gradients", lambda f: (
            f"Measured on an 8x8 digit: {f['pooling-gradients']['max_routing_errors']:.0f} max-pooling outputs "
            f"routed anywhere but their window's maximum, the routing matched autograd to "
            f"{f['pooling-gradients']['routing_vs_backward']:.1g}, a pixel in overlapping 3x3 windows collected up "
            f"to {f['pooling-gradients']['max_routes_overlap']:.0f} gradients, and non-overlapping windows "
            f"conserved the gradient's sum exactly (gap {f['pooling-gradients']['sum_gap_max']:.1g}).")),
    ]


def _max_vs_average() -> tuple[str, list]:
    textbook = ("Max pooling keeps the strongest response and suits sparse detectors; average pooling keeps the "
                "mean and suits dense features; both shrink the maps and add some shift tolerance.")
    return textbook, [
        ("pooling-choice", lambda f: (
            f"On 1000 MNIST-1D examples max pooling reached {f['pooling-choice']['acc_max']:.1%}, average "
            f"{f['pooling-choice']['acc_avg']:.1%}, no pooling {f['pooling-choice']['acc_none']:.1%}, and a "
            f"one-position shift changed max-pooled features by {f['pooling-choice']['shift_change_max']:.0%} "
            f"against {f['pooling-choice']['shift_change_none']:.0%} unpooled.")),
        ("pooling-choice", lambda f: (
            f"For binary features, max pooling's separability peaked at P = "
            f"{f['pooling-choice']['boureau_peak_P_0.01']:.0f} when features were present 1 % of the time and at "
            f"P = {f['pooling-choice']['boureau_peak_P_0.4']:.0f} at 40 %, while average pooling's kept growing "
            f"as sqrt(P).")),
    ]


QUESTIONS = (
    ("What are batch normalization's defects?", _bn_defects),
    ("Besides BN and changing the activation, what else fixes vanishing gradients?", _other_remedies),
    ("Can a net with BN and sigmoids still have vanishing gradients?", _bn_sigmoid),
    ("How do pooling layers backpropagate?", _pooling_backward),
    ("Max pooling or average pooling?", _max_vs_average),
)


@section("Interview questions, answered by this run", order=900)
def interview(document: dict) -> str:
    facts = Facts(document)
    parts = ['<p class="meta">The study notes\' questions; every number below is read from this run\'s results '
             "and links to the experiment that measured it.</p>"]
    for question, answer in QUESTIONS:
        textbook, evidence = answer()
        parts.append(f"<h3>{html.escape(question)}</h3>" + _answer(facts, textbook, evidence))
    return "\n".join(parts)
