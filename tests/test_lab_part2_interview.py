"""The interview section: answers read from the results document, with and without the experiments they cite."""
from __future__ import annotations

import re
from html.parser import HTMLParser

from normlab.lab.report import render, sections
from normlab.lab.sections.interview import QUESTIONS, interview

CITED = ("batch-size", "online-learning", "covariate-shift", "rnn-normalization", "vanishing-gradients", "bn-sigmoid",
         "pooling-gradients", "pooling-choice")

EFFECTS = {
    "batch-size": {"err_batch_32": 0.2311, "err_batch_2": 0.4422, "err_group_32": 0.2533, "err_group_2": 0.2644},
    "online-learning": {"bn_raises_at_1": 1.0, "acc_layer_1": 0.9377, "gap_2": 0.0612, "gap_32": 0.0034},
    "covariate-shift": {"mnist1d_final_noisy": 0.5144, "mnist1d_final_batch": 0.5266},
    "rnn-normalization": {"anything": 1.0},
    "vanishing-gradients": {"loss_drop_xavier": 0.0123, "loss_drop_he": 0.3977, "log_ratio_sigmoid": -11.98,
                            "log_ratio_residual": 0.13, "acc_sigmoid": 0.0961, "acc_residual": 0.3361,
                            "acc_pretrained": 0.0962, "acc_pretrained5": 0.2071, "acc_sigmoid5": 0.1171,
                            "rnn_max_grad_norm": 44.77, "rnn_loss_clipped": 0.1323, "rnn_loss_unclipped": 0.1439},
    "bn-sigmoid": {"zeros_unit_spread": 0.0, "acc_zeros": 0.1041, "saturated_large_gain": 0.6539,
                   "log_ratio_default": -0.3, "log_ratio_large_gain": 4.44, "acc_large_gain": 0.118,
                   "acc_default": 0.417, "linear_share_default": 0.9698},
    "pooling-gradients": {"max_routing_errors": 0, "routing_vs_backward": 0.0, "max_routes_overlap": 7,
                          "sum_gap_max": 0.0},
    "pooling-choice": {"acc_max": 0.8111, "acc_avg": 0.7712, "acc_none": 0.6233, "shift_change_max": 0.4464,
                       "shift_change_none": 0.7341, "boureau_peak_P_0.01": 192.0, "boureau_peak_P_0.4": 4.0},
}


def record(name, status="ok"):
    return {"id": name, "claim": "c", "anchor": "a", "criterion": "k", "seeds": [0], "verdict": "reproduced",
            "figures": [], "status": status, "effect": dict(EFFECTS[name]) if status == "ok" else {},
            "measurement": f"measured line of {name} <b>"}


class Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.hrefs = []

    def handle_starttag(self, tag, attrs):
        if tag == "a":
            self.hrefs.append(dict(attrs)["href"])


def links(page):
    parser = Links()
    parser.feed(page)
    return parser.hrefs


def test_every_question_is_answered_with_this_runs_numbers_and_links():
    page = interview({"experiments": [record(name) for name in CITED]})
    for question, _ in QUESTIONS:
        assert question.replace("'", "&#x27;") in page
    # numbers appear as the document gives them, not as any hard-coded value
    for text in ("23.1%", "44.2%", "26.4%", "93.8%", "6.1 points", "51.4%", "40%",
                 "10^-12", "34%", "21%", "44.8", "0.132", "0.144", "65%", "10^4.4", "97%", "up to 7 gradients",
                 "81.1%", "77.1%", "62.3%", "45%", "73%", "P = 192", "P = 4"):
        assert text in page, text
    assert set(links(page)) == {f"#{name}" for name in CITED}
    assert "measured line of rnn-normalization &lt;b&gt;" in page   # other runs' text is escaped
    assert "No result in this run" not in page


def test_numbers_follow_the_document():
    effects = {name: dict(values) for name, values in EFFECTS.items()}
    document = {"experiments": [record(name) for name in CITED]}
    document["experiments"][CITED.index("pooling-choice")]["effect"]["acc_max"] = 0.5555
    assert "55.5%" in interview(document) and "81.1%" not in interview(document)
    assert effects == EFFECTS


def test_without_the_experiments_the_textbook_answers_stand_and_say_what_is_missing():
    page = interview({"experiments": []})
    assert len(re.findall("<h3>", page)) == len(QUESTIONS)
    assert links(page) == []
    assert "In this run" not in page
    for name in CITED:
        assert name in page   # named as "no result in this run from: ..."


def test_a_failed_or_partial_experiment_is_not_cited():
    document = {"experiments": [record(name) for name in CITED if name != "bn-sigmoid"] + [record("bn-sigmoid",
                                                                                                   "failed")]}
    by_id = {r["id"]: r for r in document["experiments"]}
    by_id["pooling-choice"]["effect"].pop("boureau_peak_P_0.4")
    page = interview(document)
    assert "#bn-sigmoid" not in links(page)
    assert "No result in this run from: bn-sigmoid" in page
    assert "P = 192" not in page and "81.1%" in page   # only the sentence missing a number is left out


def test_the_section_is_on_the_report_page():
    assert any(title.startswith("Interview questions") for _, title, _ in sections())
    page = render({"quick": True, "experiments": [dict(record(name), title=name, method="m") for name in CITED],
                   "provenance": {}})
    assert 'id="interview-questions-answered-by-this-run"' in page
