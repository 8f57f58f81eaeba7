"""The Label Studio connector's pure pieces: scores, labeling configs, task data, answers, label ids."""

from __future__ import annotations

import numpy as np
import pytest

from activestream.labeling.label_studio_config import (
    CONTROL_LS_SCORE,
    Answer,
    SeveralChoices,
    answer_from_result,
    choice_problems,
    choice_values,
    choices_control,
    features_from_data,
    label_id,
    labeling_config,
    ls_score,
    shown_fields,
    task_data,
)


def test_label_studio_serves_activestream_order() -> None:
    # Label Studio serves the lowest prediction score first: sorting by ls_score is activestream's order.
    scores = np.array([0.2, 0.9, -1.0, 0.5, 3.0])
    served = sorted(range(len(scores)), key=lambda i: ls_score(float(scores[i])))
    assert served == list(np.argsort(-scores, kind="stable"))
    assert ls_score(0.0, control=True) == CONTROL_LS_SCORE < ls_score(1e6)


def test_generated_configs_are_single_or_multiple_choice() -> None:
    multi = labeling_config([0, 1, 2], "multiclass", data_field="text")
    assert choices_control(multi) == ("label", False) and '<Choice value="2"/>' in multi and 'value="$text"' in multi
    assert choices_control(labeling_config(["a", "b"], "multilabel")) == ("label", True)
    assert "$features" in labeling_config(["a"], "multiclass")
    assert "<Image " in labeling_config(["a"], "multiclass", data_field="img", data_type="image")
    with pytest.raises(ValueError, match="at least one class"):
        labeling_config([], "multiclass")
    with pytest.raises(ValueError, match="no <Choices"):
        choices_control('<View><Text name="t" value="$t"/></View>')


def test_answers_map_back_to_the_model_classes() -> None:
    result = [{"from_name": "other", "value": {"choices": ["x"]}}, {"from_name": "label", "value": {"choices": ["3"]}}]
    assert answer_from_result(result, "label", False, [1, 3]) == Answer(label=3)
    assert answer_from_result(result, "label", False, ["a"]) == Answer(label="3")
    many = [{"from_name": "label", "value": {"choices": ["a", "b", "a"]}}]
    assert answer_from_result(many, "label", True, ["a", "b"]) == Answer(labels=("a", "b"))
    assert answer_from_result([], "label", False) is None
    assert answer_from_result([], "label", True) == Answer(labels=())  # (multi-label, no tag chosen: none applies)
    assert Answer(label="a").digest() != Answer(label="b").digest() and Answer(label="a").digest() == Answer(label="a").digest()


def test_task_data_keeps_metadata_features_and_id(caplog: pytest.LogCaptureFixture) -> None:
    x = np.array([0.1, -2.5, 3.25, 11.84], dtype=np.float32)
    data = task_data("i1", {"text": "hi", "control": True}, x, ["a", "b", "c", "d"])
    # (the values as written, not float32 widened: 11.84, not 11.84000015258789; nothing says control)
    assert data == {"text": "hi", "activestream_id": "i1", "features": {"a": 0.1, "b": -2.5, "c": 3.25, "d": 11.84}}
    np.testing.assert_array_equal(features_from_data(data), x)  # exactly the float32 vector back
    assert task_data("i2", {}, x, None)["features"].keys() == {"f0", "f1", "f2", "f3"}
    # A field the labeling config shows that an item lacks: an empty one (Label Studio refuses a whole import without it).
    assert task_data("i3", {"title": "t"}, None, None, ["note", "title"]) == {"title": "t", "note": "", "activestream_id": "i3"}
    assert "item i3 has no metadata field 'note', which the labeling config shows" in caplog.text


def test_a_configs_shown_fields_and_choices_against_the_classes() -> None:
    config = ('<View><Text name="t" value="$note"/><Header value="$title"/><Choices name="label" toName="t" choice="single">'
              '<Choice value="Barolo"/><Choice value="barbera"/></Choices></View>')
    assert shown_fields(config) == ["note", "title"] and shown_fields(labeling_config(["a"], "multiclass")) == []
    assert choice_values(config, "label") == ["Barolo", "barbera"]
    assert choice_problems(["Barolo", "barbera"], ["barolo", "barbera"]) == [
        "choice 'Barolo' is not a class (its answers will be refused)", "class 'barolo' is not a choice (labelers cannot give it)"]
    assert choice_problems(["1", "2"], [1, 2]) == []


def test_several_choices_where_one_class_is_asked_are_refused_not_the_first_taken() -> None:
    # (a labeler audit: ["barolo", "barbera"] in a single-choice project became "barolo")
    two = [{"from_name": "label", "value": {"choices": ["barolo", "barbera"]}}]
    with pytest.raises(SeveralChoices, match=r"several choices \('barolo', 'barbera'\) in the single-choice control 'label'"):
        answer_from_result(two, "label", False, ["barolo", "barbera"])
    same = [{"from_name": "label", "value": {"choices": ["barolo", "barolo"]}}]
    assert answer_from_result(same, "label", False, ["barolo"]) == Answer(label="barolo")


def test_label_ids_are_derived_from_the_annotation_and_its_revision() -> None:
    assert label_id(4, 17, 0) == "labelstudio:4:17"
    assert label_id(4, 17, 2) == "labelstudio:4:17:r2"


def test_one_task_label_studio_refuses_costs_its_item_only() -> None:
    # (a review: one item whose task Label Studio refused made every import fail, whole, at every sync; a fake client: the
    # import's all-or-nothing rule is what is tested, not Label Studio)
    from types import SimpleNamespace

    from activestream.labeling.label_studio_project import import_tasks

    class Refused(Exception):
        status_code = 400
        body = {"validation_errors": {"data": ["bad task"]}}

    calls: list[list[str]] = []

    def import_(project: int, request: list[dict[str, object]], return_task_ids: bool) -> SimpleNamespace:
        ids = [str(t["data"]["activestream_id"]) for t in request]  # type: ignore[index]
        calls.append(ids)
        if "bad" in ids:
            raise Refused()
        return SimpleNamespace(task_ids=[100 + len(calls) * 10 + k for k in range(len(ids))])

    client = SimpleNamespace(projects=SimpleNamespace(import_tasks=import_))
    ids = ["a", "bad", "c"]
    created, refused = import_tasks(client, 7, ids, [{"data": {"activestream_id": i}} for i in ids])
    assert sorted(created) == ["a", "c"] and list(refused) == ["bad"] and "Label Studio answered 400" in refused["bad"]
    assert calls == [["a", "bad", "c"], ["a"], ["bad"], ["c"]]

    # Every task refused (the project's doing, e.g. its config changed to show a field no item has): raised as it came,
    # not each item parked as if it were its own fault.
    calls.clear()
    with pytest.raises(Refused):
        import_tasks(client, 7, ["bad", "bad"], [{"data": {"activestream_id": "bad"}}] * 2)
    assert calls == [["bad", "bad"], ["bad"], ["bad"]]

    class Down(Exception):
        status_code = 503

    def down(project: int, request: list[dict[str, object]], return_task_ids: bool) -> SimpleNamespace:
        raise Down()

    with pytest.raises(Down):  # (Label Studio away: the sync retries, the items keep their leases)
        import_tasks(SimpleNamespace(projects=SimpleNamespace(import_tasks=down)), 7, ids, [{"data": {}}] * 3)
