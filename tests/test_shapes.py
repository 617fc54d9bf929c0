"""Tests of the canonical shapes and the source converters (real_hub.shapes).

Expected rows are written by hand; the real HH-RLHF file is checked against a count made with plain
``rsplit`` string logic, not with the parser under test.
"""

from __future__ import annotations

import gzip
import json
import os
import pickle
from pathlib import Path

import pytest
from datasets import Dataset, Features, List, Value

from real_hub.convert import (
    CANDIDATE_COLUMNS,
    PAIR_COLUMNS,
    SOURCES,
    ConversionReport,
    detect_source,
    hh_batch_to_pairs,
    parse_hh,
    shp_batch_to_candidates,
    to_candidates,
    to_pairs,
    to_trl,
    ultrafeedback_score,
)
from real_hub.errors import ColumnError, ConfigError, FormatError, RowError

HH_FILE = Path(
    os.environ.get(
        "REAL_HUB_HH_FILE",
        Path(__file__).resolve().parents[2] / "shared" / "data" / "hh-rlhf-harmless-base" / "test.jsonl.gz",
    )
)


def user(text):
    return {"role": "user", "content": text}


def assistant(text):
    return {"role": "assistant", "content": text}


def pair(prompt, chosen, rejected, source_id, chosen_score=None, rejected_score=None):
    return {
        "prompt": prompt,
        "chosen": chosen,
        "rejected": rejected,
        "chosen_score": chosen_score,
        "rejected_score": rejected_score,
        "source_id": source_id,
    }


def cand(prompt, responses, scores, source_id):
    return {"prompt": prompt, "responses": responses, "scores": scores, "source_id": source_id}


# ------------------------------------------------------------------------------------------- detect


SHP_COLUMNS = [
    "post_id",
    "domain",
    "upvote_ratio",
    "history",
    "c_root_id_A",
    "c_root_id_B",
    "created_at_utc_A",
    "created_at_utc_B",
    "score_A",
    "score_B",
    "human_ref_A",
    "human_ref_B",
    "labels",
    "seconds_difference",
    "score_ratio",
]


@pytest.mark.parametrize(
    ("columns", "expected"),
    [
        (["chosen", "rejected"], "hh"),
        (["prompt", "chosen", "rejected"], "trl"),
        (["prompt", "chosen", "rejected", "chosen_score", "rejected_score", "source_id"], "trl"),
        (SHP_COLUMNS, "shp"),
        (
            ["source", "instruction", "models", "completions", "correct_answers", "incorrect_answers"],
            "ultrafeedback",
        ),
        (["prompt", "responses"], "candidates"),
        (["prompt", "responses", "scores"], "candidates"),
    ],
)
def test_detect_source_from_column_names(columns, expected):
    assert detect_source(columns) == expected


def test_detect_source_tells_trl_implicit_conversations_from_hh_by_features():
    messages = List({"role": Value("string"), "content": Value("string")})
    assert detect_source(Features({"chosen": messages, "rejected": messages})) == "trl"
    assert detect_source(Features({"chosen": Value("string"), "rejected": Value("string")})) == "hh"


def test_detect_source_unknown_lists_present_columns_and_known_schemas():
    with pytest.raises(
        FormatError, match=r"(?s)columns \['question', 'answer'\].*shp: post_id.*hh: chosen, rejected"
    ):
        detect_source(["question", "answer"])


def test_sources_constant():
    assert SOURCES == ("hh", "trl", "shp", "ultrafeedback", "candidates")


# ---------------------------------------------------------------------------------------------- HH


def test_parse_hh_splits_only_on_double_newline_markers():
    text = (
        "\n\nHuman: Is 'Human: hi' a greeting?\nAssistant: no, one newline"
        "\n\nAssistant:  Human: maybe.  \n\nHuman: ok\n\nAssistant: Bye."
    )
    assert parse_hh(text) == [
        user("Is 'Human: hi' a greeting?\nAssistant: no, one newline"),
        assistant("Human: maybe."),
        user("ok"),
        assistant("Bye."),
    ]


def test_parse_hh_rejects_text_without_markers():
    with pytest.raises(ValueError, match="HH-RLHF transcript"):
        parse_hh("just some text")


HH_ROWS = {
    "chosen": [
        "\n\nHuman: Hi there\n\nAssistant: Hello!\n\nHuman: How are you?\n\nAssistant: Fine, thanks. ",
        "\n\nHuman: A\n\nAssistant: x",  # prompt mismatch with rejected
        "\n\nHuman: Tell me\n\nAssistant: ",  # empty chosen
        "\n\nHuman: Same\n\nAssistant: same answer",  # identical after stripping
        "\n\nHuman: Q\n\nAssistant: a\n\nHuman: follow-up",  # ends with a human turn
        "\n\nHuman: Why?\n\nAssistant: Because.",
    ],
    "rejected": [
        "\n\nHuman: Hi there\n\nAssistant: Hello!\n\nHuman: How are you?\n\nAssistant: Go away.",
        "\n\nHuman: B\n\nAssistant: y",
        "\n\nHuman: Tell me\n\nAssistant: No.",
        "\n\nHuman: Same\n\nAssistant: same answer  ",
        "\n\nHuman: Q\n\nAssistant: b",
        "\n\nHuman: Why?\n\nAssistant: Why not?",
    ],
}
HH_SKIPPED = {
    "prompt_mismatch": 1,
    "empty_response": 1,
    "identical_responses": 1,
    "no_assistant_turn": 1,
}


def test_hh_to_pairs_messages():
    pairs, report = to_pairs(Dataset.from_dict(HH_ROWS))
    assert pairs.column_names == list(PAIR_COLUMNS)
    assert pairs.to_list() == [
        pair(
            [user("Hi there"), assistant("Hello!"), user("How are you?")],
            "Fine, thanks.",
            "Go away.",
            "0",
        ),
        pair([user("Why?")], "Because.", "Why not?", "5"),
    ]
    assert report == ConversionReport("hh", rows_in=6, rows_out=2, skipped=HH_SKIPPED, prompts=2)
    assert report.n_skipped == 4


def test_hh_to_pairs_text_prompt():
    pairs, report = to_pairs(Dataset.from_dict(HH_ROWS), "hh", hh_prompt="text")
    assert pairs.to_list() == [
        pair(
            "\n\nHuman: Hi there\n\nAssistant: Hello!\n\nHuman: How are you?\n\nAssistant:",
            " Fine, thanks. ",
            " Go away.",
            "0",
        ),
        pair("\n\nHuman: Why?\n\nAssistant:", " Because.", " Why not?", "5"),
    ]
    # prompt + response is the source transcript itself (the space after "Assistant:" included)
    for row in pairs:
        source = int(row["source_id"])
        assert row["prompt"] + row["chosen"] == HH_ROWS["chosen"][source]
        assert row["prompt"] + row["rejected"] == HH_ROWS["rejected"][source]
    assert report.skipped == HH_SKIPPED
    assert pairs.features["prompt"] == Value("string")


def test_hh_counts_distinct_prompts():
    rows = {
        "chosen": [
            "\n\nHuman: Q\n\nAssistant: a",
            "\n\nHuman: Q\n\nAssistant: c",
            "\n\nHuman: R\n\nAssistant: e",
        ],
        "rejected": [
            "\n\nHuman: Q\n\nAssistant: b",
            "\n\nHuman: Q\n\nAssistant: d",
            "\n\nHuman: R\n\nAssistant: f",
        ],
    }
    _, report = to_pairs(Dataset.from_dict(rows))
    assert (report.rows_out, report.prompts) == (3, 2)


def test_hh_bad_values_name_the_row():
    rows = {
        "chosen": ["\n\nHuman: a\n\nAssistant: b", None],
        "rejected": ["\n\nHuman: a\n\nAssistant: c", "x"],
    }
    with pytest.raises(RowError, match=r"row 1, column 'chosen': expected a string, found None"):
        to_pairs(Dataset.from_dict(rows), "hh")
    rows = {
        "chosen": ["\n\nHuman: a\n\nAssistant: b", "no markers"],
        "rejected": ["\n\nHuman: a\n\nAssistant: c"] * 2,
    }
    with pytest.raises(RowError, match=r"row 1, column 'chosen': expected an HH-RLHF transcript"):
        to_pairs(Dataset.from_dict(rows), "hh")


def test_hh_bad_hh_prompt_option():
    with pytest.raises(ConfigError, match="hh_prompt='chat'"):
        to_pairs(Dataset.from_dict(HH_ROWS), hh_prompt="chat")


def test_hh_batch_function_marks_skips_and_pickles_by_reference():
    ds = Dataset.from_dict(HH_ROWS)
    out = ds.map(
        hh_batch_to_pairs,
        batched=True,
        with_indices=True,
        fn_kwargs={"hh_prompt": "text"},
        remove_columns=ds.column_names,
    )
    assert out["_skip"][:] == [
        None,
        "prompt_mismatch",
        "empty_response",
        "identical_responses",
        "no_assistant_turn",
        None,
    ]
    assert out[5]["prompt"] == "\n\nHuman: Why?\n\nAssistant:"
    assert pickle.loads(pickle.dumps(hh_batch_to_pairs)) is hh_batch_to_pairs


def _independent_hh_count(rows):
    """Kept pairs, distinct prompts and skip counts, with rsplit string logic only."""
    kept, prompts, skipped = [], set(), {}
    for i, row in enumerate(rows):
        c_prefix, c_resp = row["chosen"].rsplit("\n\nAssistant:", 1)
        r_prefix, r_resp = row["rejected"].rsplit("\n\nAssistant:", 1)
        if c_prefix != r_prefix:
            reason = "prompt_mismatch"
        elif not c_resp.strip() or not r_resp.strip():
            reason = "empty_response"
        elif c_resp.strip() == r_resp.strip():
            reason = "identical_responses"
        else:
            kept.append((str(i), c_prefix + "\n\nAssistant:", c_resp, r_resp))
            prompts.add(c_prefix)
            continue
        skipped[reason] = skipped.get(reason, 0) + 1
    return kept, len(prompts), skipped


@pytest.mark.slow
def test_hh_real_file_matches_independent_count():
    with gzip.open(HH_FILE, "rt", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f]
    kept, n_prompts, skipped = _independent_hh_count(rows)
    ds = Dataset.from_list(rows)

    text_pairs, report = to_pairs(ds, hh_prompt="text")
    assert report.rows_in == len(rows) == 2312
    assert report.rows_out == len(kept)
    assert report.prompts == n_prompts
    assert report.skipped == skipped
    assert report.rows_in == report.rows_out + report.n_skipped
    got = [(r["source_id"], r["prompt"], r["chosen"], r["rejected"]) for r in text_pairs]
    assert got == kept

    msg_pairs, msg_report = to_pairs(ds)  # messages: same rows, same distinct prompts
    assert (msg_report.rows_out, msg_report.prompts, msg_report.skipped) == (len(kept), n_prompts, skipped)
    assert msg_pairs["chosen"][:] == [k[2].strip() for k in kept]
    assert all(m["role"] in ("user", "assistant") for p in msg_pairs["prompt"] for m in p)
    assert all(p[-1]["role"] == "user" for p in msg_pairs["prompt"])


# --------------------------------------------------------------------------------------------- TRL


def test_trl_standard():
    rows = {
        "prompt": ["The sky is", "Grass is", "Water is", "Fire is"],
        "chosen": [" blue.", " green.", "", " hot."],
        "rejected": [" green.", " purple.", " wet.", " hot. "],
        "score_chosen": [8.0, 7, 1.0, 2.0],
        "score_rejected": [2.0, 3, 1.0, 2.0],
    }
    pairs, report = to_pairs(Dataset.from_dict(rows))
    assert report.source == "trl"
    assert pairs.to_list() == [
        pair("The sky is", " blue.", " green.", "0", 8.0, 2.0),
        pair("Grass is", " green.", " purple.", "1", 7.0, 3.0),
    ]
    assert report.skipped == {"empty_response": 1, "identical_responses": 1}


def test_trl_conversational():
    rows = {
        "prompt": [[user("Sky?")], [user("Grass?")], [user("Sea?")], [user("Sun?")]],
        "chosen": [
            [assistant("Blue.")],
            [assistant("Green."), user("sure?")],
            [user("Wet.")],
            [assistant("Hot.")],
        ],
        "rejected": [[assistant("Green.")], [assistant("Red.")], [assistant("Dry.")], [assistant("Cold.")]],
        "source_id": ["a", "b", "c", "d"],
    }
    pairs, report = to_pairs(Dataset.from_dict(rows), "trl")
    assert pairs.to_list() == [
        pair([user("Sky?")], "Blue.", "Green.", "a"),
        pair([user("Sun?")], "Hot.", "Cold.", "d"),
    ]
    assert report.skipped == {"multi_turn_completion": 1, "no_assistant_turn": 1}
    assert report.rows_in == report.rows_out + report.n_skipped


def test_trl_implicit_prompt_conversations():
    rows = {
        "chosen": [
            [user("Sky?"), assistant("Blue.")],
            [user("Hi"), assistant("Hello"), user("Bye?"), assistant("Bye!")],
            [user("A?"), assistant("a")],
        ],
        "rejected": [
            [user("Sky?"), assistant("Green.")],
            [user("Hi"), assistant("Hello"), user("Bye?"), assistant("No.")],
            [user("B?"), assistant("b")],
        ],
    }
    pairs, report = to_pairs(Dataset.from_dict(rows))
    assert pairs.to_list() == [
        pair([user("Sky?")], "Blue.", "Green.", "0"),
        pair([user("Hi"), assistant("Hello"), user("Bye?")], "Bye!", "No.", "1"),
    ]
    assert report.skipped == {"prompt_mismatch": 1}
    assert report.prompts == 2


def test_trl_implicit_prompt_agrees_with_trl_extract_prompt():
    from trl.data_utils import extract_prompt

    example = {
        "chosen": [user("Hi"), assistant("Hello"), user("Bye?"), assistant("Bye!")],
        "rejected": [user("Hi"), assistant("Hello"), user("Bye?"), assistant("No.")],
    }
    pairs, _ = to_pairs(Dataset.from_list([example]), "trl")
    expected = extract_prompt(example)
    assert pairs[0]["prompt"] == expected["prompt"]
    assert [assistant(pairs[0]["chosen"])] == expected["chosen"]
    assert [assistant(pairs[0]["rejected"])] == expected["rejected"]


def test_trl_plain_text_without_prompt_is_a_column_error():
    ds = Dataset.from_dict({"chosen": ["a"], "rejected": ["b"], "id": [1]})
    with pytest.raises(ColumnError, match=r"'prompt'.*\['chosen', 'rejected', 'id'\].*source='hh'"):
        to_pairs(ds, "trl")


def test_trl_wrong_types_name_the_row():
    ds = Dataset.from_dict({"prompt": ["p", "q"], "chosen": ["a", "b"], "rejected": ["c", "d"]})
    bad = Dataset.from_dict({"prompt": ["p", None], "chosen": ["a", "b"], "rejected": ["c", "d"]})
    with pytest.raises(
        RowError, match=r"row 1, column 'prompt': expected a string or a list of chat messages"
    ):
        to_pairs(bad)
    bad = Dataset.from_dict(
        {"prompt": ["p", "q"], "chosen": ["a", "b"], "rejected": ["c", "d"], "chosen_score": ["x", "y"]}
    )
    bad = bad.add_column("rejected_score", [1.0, 2.0])
    with pytest.raises(RowError, match=r"row 0, column 'chosen_score': expected a number"):
        to_pairs(bad)
    assert to_pairs(ds)[1].rows_out == 2


# ----------------------------------------------------------------------------------------- to_trl


def test_to_trl_round_trip_standard():
    pairs = Dataset.from_list(
        [pair("The sky is", " blue.", " green.", "s1", 1.5, -0.5), pair("Grass is", " green.", " red.", None)]
    )
    trl = to_trl(pairs)
    assert trl.to_list() == pairs.to_list()  # plain strings stay plain
    back, report = to_pairs(trl)
    assert back.to_list() == pairs.to_list()
    assert report.n_skipped == 0


def test_to_trl_round_trip_conversational():
    pairs = Dataset.from_list(
        [
            pair([user("Sky?")], "Blue.", "Green.", "7", 0.9, 0.1),
            pair([user("Hi"), assistant("Hello"), user("Bye?")], "Bye!", "No.", "8"),
        ]
    )
    trl = to_trl(pairs)
    assert trl.to_list() == [
        {
            "prompt": [user("Sky?")],
            "chosen": [assistant("Blue.")],
            "rejected": [assistant("Green.")],
            "chosen_score": 0.9,
            "rejected_score": 0.1,
            "source_id": "7",
        },
        {
            "prompt": [user("Hi"), assistant("Hello"), user("Bye?")],
            "chosen": [assistant("Bye!")],
            "rejected": [assistant("No.")],
            "chosen_score": None,
            "rejected_score": None,
            "source_id": "8",
        },
    ]
    back, _ = to_pairs(trl)
    assert back.to_list() == pairs.to_list()
    assert to_trl(trl).to_list() == trl.to_list()  # already TRL: unchanged


def test_to_trl_output_is_conversational_for_trl():
    from trl.data_utils import is_conversational

    pairs = Dataset.from_list([pair([user("Sky?")], "Blue.", "Green.", "0")])
    example = to_trl(pairs)[0]
    assert is_conversational({"chosen": example["chosen"]})


def test_to_trl_missing_column():
    with pytest.raises(ColumnError, match=r"'rejected'.*\['prompt', 'chosen'\]"):
        to_trl(Dataset.from_dict({"prompt": ["p"], "chosen": ["c"]}))


# --------------------------------------------------------------------------------------------- SHP


def shp_row(post, history, id_a, id_b, ref_a, ref_b, score_a, score_b):
    return {
        "post_id": post,
        "domain": "askscience_train",
        "upvote_ratio": 0.9,
        "history": history,
        "c_root_id_A": id_a,
        "c_root_id_B": id_b,
        "created_at_utc_A": 1,
        "created_at_utc_B": 2,
        "score_A": score_a,
        "score_B": score_b,
        "human_ref_A": ref_a,
        "human_ref_B": ref_b,
        "labels": int(score_a > score_b),
        "seconds_difference": 1.0,
        "score_ratio": 2.0,
    }


SHP_ROWS = [
    shp_row("p1", "Why is the sky blue?", "c1", "c2", "Rayleigh.", "Magic.", 10, 2),
    shp_row("p2", "Is water wet?", "d1", "d2", "Yes.", "No.", 5, 1),
    shp_row("p1", "Why is the sky blue?", "c1", "c3", "Rayleigh.", "Ocean.", 12, 4),  # c1 re-seen: 12 vs 10
    shp_row("p1", "Why is the sky blue?", "c3", "c2", "Ocean.", "Magic.", 4, 2),
    shp_row("p3", "Empty?", "e1", "e2", "  ", "", 3, 1),  # no comment left
    shp_row("p2", "Is water wet?", "", "", "Depends.", "Yes.", 3, 5),  # no ids: by text; "Yes." is d1's text
]


def test_shp_groups_posts_globally():
    cands, report = to_candidates(Dataset.from_list(SHP_ROWS))
    assert cands.column_names == list(CANDIDATE_COLUMNS)
    assert cands.to_list() == [
        cand("Why is the sky blue?", ["Rayleigh.", "Magic.", "Ocean."], [12.0, 2.0, 4.0], "p1"),
        cand("Is water wet?", ["Yes.", "No.", "Depends."], [5.0, 1.0, 3.0], "p2"),
    ]
    assert report == ConversionReport(
        "shp",
        rows_in=6,
        rows_out=2,
        skipped={"no_responses": 1},
        prompts=2,
        notes={"inconsistent_score": 1, "empty_response": 2},
    )


def test_canonical_candidates_convert_to_themselves():
    cands, _ = to_candidates(Dataset.from_list(SHP_ROWS))
    again, report = to_candidates(cands)
    assert report.source == "candidates"
    assert again.to_list() == cands.to_list()
    assert again.features == cands.features


def test_shp_batch_function_groups_within_the_batch():
    batch = {k: [r[k] for r in SHP_ROWS[:3]] for k in SHP_COLUMNS}
    out = shp_batch_to_candidates(batch, indices=[0, 1, 2])
    assert out["source_id"] == ["p1", "p2"]
    assert out["responses"] == [["Rayleigh.", "Magic.", "Ocean."], ["Yes.", "No."]]
    assert out["scores"] == [[12.0, 2.0, 4.0], [5.0, 1.0]]
    assert out["_skip"] == [None, None]
    assert out["_notes"] == [["inconsistent_score"], []]


def test_shp_missing_columns_and_bad_scores():
    ds = Dataset.from_list(SHP_ROWS).remove_columns(["human_ref_B"])
    with pytest.raises(ColumnError, match=r"'human_ref_B'.*\['post_id', 'domain'"):
        to_candidates(ds, "shp")
    rows = [dict(SHP_ROWS[0]), dict(SHP_ROWS[1], score_B=None)]
    with pytest.raises(RowError, match=r"row 1, column 'score_B': expected a number, found None"):
        to_candidates(Dataset.from_list(rows))


# ------------------------------------------------------------------------------------ UltraFeedback


def uf_completion(response, ratings, fine=None, model="m"):
    aspects = ("helpfulness", "honesty", "instruction_following", "truthfulness")
    annotations = {a: {"Rating": r, "Rationale": "because"} for a, r in zip(aspects, ratings, strict=False)}
    return {
        "model": model,
        "response": response,
        "annotations": annotations,
        "overall_score": 7.0,
        "fine-grained_score": fine,
    }


UF_ROWS = [
    {
        "source": "evol_instruct",
        "instruction": "Name a colour.",
        "models": ["a", "b", "c"],
        "completions": [
            uf_completion("Blue.", ["5", "4", "N/A", "3"], 4.0),
            uf_completion("", ["1", "1", "1", "1"], 1.0),
            uf_completion("Seven.", ["2", "1", "2", "1"], 1.5),
        ],
    },
    {
        "source": "flan",
        "instruction": "Say nothing.",
        "models": ["a"],
        "completions": [uf_completion("  ", ["5", "5", "5", "5"], 5.0)],
    },
    {
        "source": "sharegpt",
        "instruction": "Count to two.",
        "models": ["a", "b"],
        "completions": [
            uf_completion("1, 2", ["N/A", "N/A", "N/A", "N/A"], 4.5),  # no rating: stored score
            uf_completion("1", ["N/A", "N/A", "N/A", "N/A"], None),  # no score at all
        ],
    },
]


def test_ultrafeedback_to_candidates():
    cands, report = to_candidates(Dataset.from_list(UF_ROWS))
    assert report.source == "ultrafeedback"
    assert cands.to_list() == [
        cand("Name a colour.", ["Blue.", "Seven."], [4.0, 1.5], "0"),
        cand("Count to two.", ["1, 2"], [4.5], "2"),
    ]
    assert report.skipped == {"no_responses": 1}
    assert report.notes == {"empty_response": 2, "unrated_response": 1}
    assert report.rows_in == report.rows_out + report.n_skipped


def test_ultrafeedback_score_rule():
    assert ultrafeedback_score(uf_completion("x", ["4", "N/A", "5", "3"], 1.0)) == 4.0
    assert ultrafeedback_score({"response": "x", "fine-grained_score": 2.25}) == 2.25
    assert ultrafeedback_score({"response": "x"}) is None
    with pytest.raises(RowError, match=r"row 3, column 'completions\[1\].annotations.honesty.Rating'"):
        ultrafeedback_score(uf_completion("x", ["4", "good"]), row=3, item=1)


# ------------------------------------------------------------------------------------- candidates


def test_plain_candidates_pass_through():
    rows = {
        "prompt": ["Q1", "Q2"],
        "responses": [["a", "b", "c"], ["d"]],
        "scores": [[1, 2.5, 0], [3.0]],
        "extra": [1, 2],
    }
    cands, report = to_candidates(Dataset.from_dict(rows))
    assert cands.to_list() == [
        cand("Q1", ["a", "b", "c"], [1.0, 2.5, 0.0], "0"),
        cand("Q2", ["d"], [3.0], "1"),
    ]
    assert report == ConversionReport("candidates", 2, 2, {}, 2)


def test_plain_candidates_conversational_without_scores():
    rows = {
        "prompt": [[user("Hi")], [user("Hi")]],
        "responses": [["a", "b"], ["c", "d"]],
        "source_id": ["x", "y"],
    }
    cands, report = to_candidates(Dataset.from_dict(rows), "candidates")
    assert cands.to_list() == [
        cand([user("Hi")], ["a", "b"], None, "x"),
        cand([user("Hi")], ["c", "d"], None, "y"),
    ]
    assert report.prompts == 1


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (
            {"prompt": ["a", "b"], "responses": [["x", "y"], ["x", "y"]], "scores": [[1.0, 2.0], [1.0]]},
            r"row 1, column 'scores': expected one score per response \(2\), found 1 scores",
        ),
        (
            {"prompt": ["a", "b", "c"], "responses": [["x"], ["x"], ["x", None]]},
            r"row 2, column 'responses\[1\]': expected a non-empty string, found None",
        ),
        (
            {"prompt": ["a", "b"], "responses": [["x", ""], ["y"]]},
            r"row 0, column 'responses\[1\]': expected a non-empty string",
        ),
        (
            {"prompt": ["a", "b"], "responses": [["x"], []]},
            r"row 1, column 'responses': expected a non-empty list",
        ),
        (
            {"prompt": ["a", " "], "responses": [["x"], ["y"]]},
            r"row 1, column 'prompt': expected a non-empty prompt",
        ),
        (
            {"prompt": ["a"], "responses": [["x"]], "scores": [[None]]},
            r"row 0, column 'scores\[0\]': expected a number, found None",
        ),
    ],
)
def test_plain_candidates_errors_name_the_row(rows, message):
    with pytest.raises(RowError, match=message):
        to_candidates(Dataset.from_dict(rows))


def test_plain_candidates_non_string_response():
    ds = Dataset.from_dict({"prompt": ["a"], "responses": [[1, 2]]})
    with pytest.raises(
        RowError, match=r"row 0, column 'responses\[0\]': expected a non-empty string, found int"
    ):
        to_candidates(ds)


# ---------------------------------------------------------------------------------- shape mismatch


def test_asking_pairs_of_a_candidates_source_names_the_right_function():
    with pytest.raises(FormatError, match=r"'candidates' holds candidates.*use to_candidates\(\)"):
        to_pairs(Dataset.from_dict({"prompt": ["a"], "responses": [["x", "y"]]}))
    with pytest.raises(FormatError, match=r"'shp'.*to_candidates"):
        to_pairs(Dataset.from_list(SHP_ROWS), "shp")


def test_asking_candidates_of_a_pair_source_names_the_right_function():
    with pytest.raises(FormatError, match=r"'hh' holds chosen/rejected pairs.*use to_pairs\(\)"):
        to_candidates(Dataset.from_dict(HH_ROWS))


def test_unknown_source_name():
    with pytest.raises(ConfigError, match=r"source='anthropic' is not one of hh, trl"):
        to_pairs(Dataset.from_dict(HH_ROWS), "anthropic")


def test_missing_columns_list_present_columns():
    with pytest.raises(
        ColumnError, match=r"expected column\(s\) 'rejected', but the data has columns \['chosen'\]"
    ):
        to_pairs(Dataset.from_dict({"chosen": ["x"]}), "hh")
    with pytest.raises(ColumnError, match=r"'completions'.*\['instruction'\]"):
        to_candidates(Dataset.from_dict({"instruction": ["x"]}), "ultrafeedback")


def test_report_to_dict():
    report = ConversionReport("hh", 10, 7, {"empty_response": 2, "prompt_mismatch": 1}, 6)
    assert report.to_dict() == {
        "source": "hh",
        "rows_in": 10,
        "rows_out": 7,
        "skipped": {"empty_response": 2, "prompt_mismatch": 1},
        "prompts": 6,
        "notes": {},
        "n_skipped": 3,
    }
    json.dumps(report.to_dict())


def test_to_trl_makes_a_column_mixing_text_and_message_prompts_conversational(tmp_path):
    import json

    from datasets import Dataset

    from real_hub import to_trl

    turns = [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello"},
        {"role": "user", "content": "Bye?"},
    ]
    rows = [
        {"prompt": "Plain?", "chosen": "a", "rejected": "b"},
        {"prompt": turns, "chosen": "c", "rejected": "d"},
    ]
    (tmp_path / "mixed.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    ds = Dataset.from_json(str(tmp_path / "mixed.jsonl"))  # a mixed column loads as datasets' Json feature
    out = to_trl(ds)
    assert out[0]["prompt"] == [{"role": "user", "content": "Plain?"}]
    assert out[1]["prompt"] == turns
    assert out[0]["chosen"] == [{"role": "assistant", "content": "a"}]
    assert out[1]["rejected"] == [{"role": "assistant", "content": "d"}]
