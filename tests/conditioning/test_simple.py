"""number, int and options conditioners: one token, clamping, and errors naming the value."""
from __future__ import annotations

import pytest
import torch

from audiotools.conditioning import ConditionerSet
from audiotools.errors import ConfigError


def _set(**sections) -> ConditionerSet:
    torch.manual_seed(0)
    return ConditionerSet(sections, dim=6).eval()


def test_a_number_is_one_token_normalised_and_clamped():
    conditioners = _set(seconds_total={"type": "number", "min": 0, "max": 100, "features": 8})
    number = conditioners["seconds_total"]
    assert number.normalised([-5.0, 0.0, 25.0, 100.0, 600.0]).tolist() == [0, 0, 0.25, 1, 1]
    # A dataset item's metadata beyond the range reads as its end (a 600 s file as 100 s).
    items = [{"path": f"{index}.wav", "seconds_total": value}
             for index, value in enumerate((100, 600, 50, "50"))]
    condition = conditioners(items)["seconds_total"]
    assert condition.embeddings.shape == (4, 1, 6) and condition.mask.all()
    same = torch.testing.assert_close
    same(condition.embeddings[0], condition.embeddings[1])  # 600 clamped to max
    same(condition.embeddings[2], condition.embeddings[3])  # text that reads 50
    assert (condition.embeddings[0] - condition.embeddings[2]).abs().max() > 1e-3
    same(conditioners.encode({"seconds_total": 50})["seconds_total"].embeddings[0],
         condition.embeddings[2])
    # A value a caller asks for is not quietly another: outside the range is an error.
    for value in (600, -5):
        with pytest.raises(ConfigError, match=rf"holds {value}, outside \[min=0, max=100\]"):
            conditioners.encode({"seconds_total": value})


@pytest.mark.parametrize("value", ["fast", True, float("nan"), [1, 2]])
def test_a_number_that_is_not_one_is_an_error(value):
    conditioners = _set(bpm={"type": "number", "min": 0, "max": 200})
    with pytest.raises(ConfigError, match=r"conditioner 'bpm': values\[0\]\['bpm'\] holds"):
        conditioners.encode({"bpm": value})


def test_an_int_takes_one_row_per_value_and_refuses_the_rest():
    conditioners = _set(steps={"type": "int", "min": 2, "max": 5})
    out = conditioners.encode([{"steps": 2}, {"steps": 5}, {"steps": 2.0}])["steps"]
    table = conditioners["steps"].table.weight
    assert out.embeddings.shape == (3, 1, 6)
    assert torch.equal(out.embeddings[:, 0], table[[0, 3, 0]])
    for bad in (6, 1, 2.5, "3", False):
        with pytest.raises(ConfigError, match=r"not an integer in \[min=2, max=5\]"):
            conditioners.encode({"steps": bad})


def test_options_compare_as_text_and_an_unknown_value_names_the_options(music_items):
    conditioners = _set(bpm={"type": "options", "options": ["84", "128"]},
                        ensemble={"type": "options", "options": ["string quartet"]})
    with pytest.raises(ConfigError) as caught:
        conditioners(music_items[:2])
    message = str(caught.value)
    assert music_items[1]["path"] in message and "church organ" in message
    assert "['string quartet']" in message and "conditioners.ensemble.default" in message
    out = conditioners.encode([{"bpm": 128, "ensemble": "string quartet"},
                               {"bpm": "84", "ensemble": "string quartet"}])
    assert torch.equal(out["bpm"].embeddings[:, 0], conditioners["bpm"].table.weight[[1, 0]])


def test_an_options_default_takes_unknown_and_missing_values():
    conditioners = _set(genre={"type": "options", "options": ["chorale", "other"],
                               "default": "other"})
    out = conditioners.encode([{"genre": "jig"}, {}, {"genre": "other"}])["genre"]
    assert torch.equal(out.embeddings[0], out.embeddings[2])
    assert torch.equal(out.embeddings[1], out.embeddings[2])
    with pytest.raises(ConfigError, match="takes one value"):
        conditioners.encode({"genre": ["chorale"]})
