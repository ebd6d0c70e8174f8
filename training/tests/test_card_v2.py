"""signature-v2's card generator on the shipped model's own files: every test figure of
evaluation.json lands on the card with its verdict, and a resumed run's clocks add up."""

import json
import shutil
from pathlib import Path

from twin_train import card_v2
from twin_train.evaluate import pct

REPO = Path(__file__).resolve().parents[2]


def test_run_summary_adds_the_segments_of_a_resumed_run(tmp_path):
    log = [{"epoch": 1, "wall_s": 10, "cpu_s": 9, "val_eer_skilled": 0.3},
           {"epoch": 2, "wall_s": 20, "cpu_s": 18, "val_eer_skilled": 0.2},
           {"epoch": 3, "wall_s": 7, "cpu_s": 12, "val_eer_skilled": 0.25}]  # resumed: clocks restart
    (tmp_path / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in log))
    s = card_v2.run_summary(tmp_path)
    assert (s["wall_s"], s["cpu_s"], s["best_val_eer_skilled"], s["best_epoch"]) == (27, 30, 0.2, 2)


def test_card_shows_every_test_figure_and_its_target(tmp_path):
    model = tmp_path / "signature-v2"
    shutil.copytree(REPO / "models/signature-v2", model)
    shutil.copytree(REPO / "models/signature-v1", tmp_path / "signature-v1")
    run = tmp_path / "run"
    run.mkdir()
    (run / "log.jsonl").write_text(json.dumps({"epoch": 1, "wall_s": 5, "cpu_s": 4, "val_eer_skilled": 0.2}) + "\n")
    card_v2.main(["--model", str(model), "--run", str(run), "--synth-writers", "1000"])
    card = (model / "MODEL_CARD.md").read_text()
    report = json.loads((model / "evaluation.json").read_text())
    for collection, figures in report["test"].items():
        for kind in ("skilled", "random"):
            eer = figures[kind]["eer"]
            target = card_v2.TARGETS[(collection, kind)]
            verdict = "met" if eer <= target else "not met"
            assert f"| {pct(eer)} | ≤ {pct(target)} | {verdict} |" in card
    assert "signature-v1 | signature-v2" in card and "{" not in card
    joint = json.loads((model / "joint.json").read_text())
    chosen = next(c for c in joint["candidates"] if c["hidden"] == joint["chosen_hidden"])
    row = (f"| test bhsig | {pct(joint['cosine']['test']['bhsig']['skilled_eer'])} | "
           f"{pct(chosen['test']['bhsig']['skilled_eer'])} |")
    assert "## Joint layers" in card and row in card


def test_subject_section_files_twins_figures_and_judges_them_against_issue_20(tmp_path):
    def decision(collection, aggregation, eer, frr, far_at):
        return {"collection": collection, "aggregation": aggregation, "references": 5,
                "skilled": {"eer": eer}, "random": {"eer": 0.02},
                "operating_points": [{"target_far": t, "frr": frr, "far_skilled": f, "far_random": 0.001}
                                     for t, f in far_at.items()]}
    val = tmp_path / "val.json"
    test = tmp_path / "test.json"
    plan = {"draws": 10, "random_probes": 200, "seed": 0}
    val.write_text(json.dumps({"subject_level": {**plan, "decisions": [
        decision("bhsig", "best", 0.031, 0.2, {0.01: 0.01})]}}))
    test.write_text(json.dumps({"subject_level": {**plan, "decisions": [
        decision("bhsig", "best", 0.045, 0.12, {0.1: 0.08, 0.01: 0.03}),
        decision("icdar", "best", 0.2, 0.5, {0.01: 0.05})]}}))
    figures = card_v2.subject_figures(val, test)
    assert figures["plan"] == plan and len(figures["test"]) == 2
    text = card_v2._subjects(figures)
    # validation EER beside the test figures; the ICDAR row has no validation figure
    assert "| best of 5 | bhsig | 3.10 % | 4.50 % |" in text
    assert "| best of 5 | icdar | — | 20.00 % |" in text
    # BHSig, 5 references: EER 4.5 % ≤ 5 %, FRR 12 % ≤ 15 %, random 0.1 % ≤ 0.5 %;
    # FAR 10 % measured 8 % is within [5, 20] %, FAR 1 % measured 3 % is not within [0.5, 2] %
    assert "| best of 5 | 4.50 % ✓ | 12.00 % ✓ | 0.10 % ✓ | 10.00 %: 8.00 % ✓, 1.00 %: 3.00 % ✗ |" in text
