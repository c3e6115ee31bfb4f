"""The Tracks container: shapes checked on construction, rows picked by mask or position with their data,
parts merged in order, and the bottom-centre anchor zones are assigned by. Expected values by hand."""

from __future__ import annotations

import numpy as np
import pytest

from ingestion.detectors import Tracks


def three() -> Tracks:
    """Three boxes (x, y, w, h) with a per-row motion score and frame index."""
    return Tracks(
        np.array([7, 8, 9], np.int64),
        np.array([0, 0, 2], np.int16),
        np.array([0.9, 0.5, 0.7], np.float32),
        np.array([[10, 20, 4, 30], [0, 0, 10, 10], [100, 50, 21, 7]], np.float32),
        {"motion_score": np.array([0.1, 0.2, 0.3]), "frame_idx": np.array([4, 4, 5])},
    )


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("class_id", np.zeros(2, np.int16), r"Tracks\.class_id has shape \(2,\), expected \(3,\)"),
        ("conf", np.zeros((3, 1)), r"Tracks\.conf has shape \(3, 1\), expected \(3,\)"),
        ("xywh", np.zeros((3, 2)), r"Tracks\.xywh has shape \(3, 2\), expected \(3, 4\)"),
        ("xywh", np.zeros(12), r"Tracks\.xywh has shape \(12,\), expected \(3, 4\)"),
        ("track_id", np.zeros((3, 1)), r"Tracks\.track_id must have shape \(N,\), got \(3, 1\)"),
    ],
)
def test_a_wrongly_shaped_field_is_named_with_both_shapes(field, value, message):
    t = three()
    fields = {"track_id": t.track_id, "class_id": t.class_id, "conf": t.conf, "xywh": t.xywh}
    with pytest.raises(ValueError, match=message):
        Tracks(**(fields | {field: value}))


def test_a_data_array_with_another_row_count_is_refused():
    t = three()
    with pytest.raises(ValueError, match=r"Tracks\.data\['ts'\] has shape \(4,\), expected \(3, \.\.\.\)"):
        Tracks(t.track_id, t.class_id, t.conf, t.xywh, {"ts": np.zeros(4)})


def test_a_boolean_mask_picks_rows_and_their_data():
    picked = three()[np.array([True, False, True])]
    assert picked.track_id.tolist() == [7, 9]
    assert picked.class_id.tolist() == [0, 2]
    assert picked.conf.tolist() == pytest.approx([0.9, 0.7])
    assert picked.xywh.tolist() == [[10, 20, 4, 30], [100, 50, 21, 7]]
    assert picked.data["motion_score"].tolist() == [0.1, 0.3] and picked.data["frame_idx"].tolist() == [4, 5]


def test_positions_slices_and_one_integer_give_tracks():
    t = three()
    assert t[[2, 0]].track_id.tolist() == [9, 7] and t[[2, 0]].data["frame_idx"].tolist() == [5, 4]
    assert t[1:].track_id.tolist() == [8, 9] and t[1:].data["motion_score"].tolist() == [0.2, 0.3]
    one = t[1]
    assert isinstance(one, Tracks) and len(one) == 1 and one.xywh.tolist() == [[0, 0, 10, 10]]
    none = t[[]]
    assert len(none) == 0 and none.xywh.shape == (0, 4) and none.data["motion_score"].shape == (0,)
    assert len(t[t.conf > 0.95]) == 0


def test_a_mask_of_the_wrong_length_is_refused():
    with pytest.raises(IndexError, match=r"boolean mask over 3 tracks has shape \(2,\)"):
        three()[np.array([True, False])]


def test_merge_keeps_the_parts_rows_in_order_with_their_data():
    t = three()
    merged = Tracks.merge([t[[2]], t[[]], t[[0, 1]]])
    assert merged.track_id.tolist() == [9, 7, 8]
    assert merged.xywh.tolist() == [[100, 50, 21, 7], [10, 20, 4, 30], [0, 0, 10, 10]]
    assert merged.data["motion_score"].tolist() == [0.3, 0.1, 0.2]
    assert merged.data["frame_idx"].tolist() == [5, 4, 4]
    assert (merged.track_id.dtype, merged.class_id.dtype, merged.conf.dtype, merged.xywh.dtype) == (
        np.int64,
        np.int16,
        np.float32,
        np.float32,
    )
    assert len(Tracks.merge([])) == 0


def test_merge_refuses_parts_with_other_data():
    t = three()
    with pytest.raises(
        ValueError, match=r"part 1 carries data \[\], part 0 carries \['frame_idx', 'motion_score'\]"
    ):
        Tracks.merge([t, Tracks.empty()])


def test_the_anchor_is_the_middle_of_the_bottom_edge():
    # (x + w/2, y + h): (10 + 2, 20 + 30), (0 + 5, 0 + 10), (100 + 10.5, 50 + 7)
    anchor = three().anchor
    assert anchor.dtype == np.float64
    assert anchor.tolist() == [[12.0, 50.0], [5.0, 10.0], [110.5, 57.0]]
    assert Tracks.empty().anchor.shape == (0, 2)


def test_from_xyxy_gives_top_left_and_size():
    t = Tracks.from_xyxy(np.array([[10, 20, 14, 50]]), [3], [0], [0.5])
    assert t.xywh.tolist() == [[10, 20, 4, 30]] and t.track_id.dtype == np.int64 and t.data == {}
