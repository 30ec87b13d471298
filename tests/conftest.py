"""Hermetic fixtures shared by the test suite: a tiny random BERT and a mini BEIR dataset.

Nothing here touches the network. ``HF_HUB_OFFLINE`` is set before anything from Hugging Face
is imported, and the tiny model is built from the WordPiece vocabulary checked in at
``tests/data/vocab.txt`` (regenerate it with ``python tests/data/make_vocab.py``).

Fixtures (session-scoped unless noted):

- ``tiny_model_path``: folder of a randomly initialised, seeded BERT (hidden size 32, 2 layers)
  wrapped as ``Transformer -> Pooling(mean)`` like all-MiniLM-L6-v2, ``max_seq_length`` 64.
  It loads with plain ``SentenceTransformer(str(path), device="cpu")``.
- ``tiny_model``: that folder, loaded. Shared by every test: do not train it in place; load
  your own copy from ``tiny_model_path`` when a test changes weights.
- ``mini_beir``: a BEIR folder of 40 documents on five topics (vitamin D, insulin, malaria,
  statins, sleep) and 24 queries: 16 train (``q01``-``q16``), 8 test (``q17``-``q24``), no query
  in both. Each topic has distractors: documents that share words with a query but do not
  answer it. Qrels are mostly score 1; six pairs are graded 2 and ``q18 -> d06`` is judged 0
  (not relevant). Train: 17 qrels lines, test: 10. Read-only by convention.
- ``mini_beir_copy`` (function scope): a writable copy of ``mini_beir`` for tests that break it.
"""

from __future__ import annotations

import os
import tempfile

# Set before any Hugging Face import so that nothing below can reach the network.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# `honed run` keeps the base model's embeddings on disk by default; tests must never write to (or
# read from) the user's ~/.cache, so every session gets its own empty cache folder.
os.environ["HONED_CACHE_DIR"] = tempfile.mkdtemp(prefix="honed-test-cache-")

import json  # noqa: E402
import shutil  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import TYPE_CHECKING  # noqa: E402

import pytest  # noqa: E402

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

DATA_DIR = Path(__file__).parent / "data"
VOCAB_PATH = DATA_DIR / "vocab.txt"
TINY_DIM = 32
TINY_MAX_SEQ_LENGTH = 64
TINY_SEED = 0

# The tables below are laid out by hand, one record per entry: keep the formatter off them.
# fmt: off
# (doc id, title, text). Eight documents per topic; the distractors are marked.
MINI_CORPUS: tuple[tuple[str, str, str], ...] = (
    # vitamin D
    ("d01", "Vitamin D supplementation and hip fractures in older adults",
     "In a randomized trial of older adults, daily vitamin D supplementation reduced the risk "
     "of hip fractures and improved bone mineral density over three years."),
    ("d02", "Vitamin D deficiency and respiratory infections in children",
     "Children with low blood levels of vitamin D had more respiratory infections during "
     "winter, and weekly supplementation reduced the number of infections."),
    ("d03", "Skin synthesis of vitamin D after sunlight exposure",
     "The skin produces vitamin D after exposure to sunlight. People who live far from the "
     "equator make less vitamin D in the winter months."),
    ("d04", "Vitamin D and depression in a cohort study",
     "In a large cohort study, vitamin D levels were not associated with the risk of "
     "depression after adjustment for age and physical activity."),
    ("d05", "Dietary calcium intake and kidney stones",  # distractor for q01 (bone)
     "High dietary calcium intake did not increase the risk of kidney stones in women. Bone "
     "mineral density was measured at the start of the study."),
    ("d06", "Vitamin C and the common cold",  # distractor for q02 / q18, judged 0 for q18
     "Vitamin C supplementation did not prevent the common cold in adults, although it "
     "slightly shortened the duration of symptoms."),
    ("d07", "Sunscreen use and skin cancer",  # distractor for q03 (skin, sunlight)
     "Regular use of sunscreen reduced the incidence of skin cancer in adults exposed to "
     "strong sunlight."),
    ("d08", "The vitamin D receptor in immune cells",
     "Immune cells express the vitamin D receptor, and the active hormone controls genes "
     "that regulate inflammation."),
    # insulin
    ("d09", "Insulin resistance in obesity",
     "Obesity causes insulin resistance in muscle and liver cells, which raises blood glucose "
     "and increases the risk of type 2 diabetes."),
    ("d10", "Exercise improves insulin sensitivity",
     "Regular aerobic exercise for twelve weeks improved insulin sensitivity in adults with "
     "type 2 diabetes, independent of weight loss."),
    ("d11", "Insulin secretion by pancreatic beta cells",
     "Pancreatic beta cells release insulin in response to rising blood glucose after a "
     "meal. Loss of beta cells leads to type 1 diabetes."),
    ("d12", "Metformin lowers blood glucose",
     "Metformin lowers blood glucose mainly by reducing glucose production in the liver, and "
     "it is the first treatment for type 2 diabetes."),
    ("d13", "Insulin pumps in type 1 diabetes",
     "Children with type 1 diabetes who used an insulin pump had better glucose control than "
     "children treated with daily injections."),
    ("d14", "Exercise and muscle strength in older adults",  # distractor for q06 (exercise)
     "Resistance exercise increased muscle strength and walking speed in older adults, but "
     "blood glucose did not change."),
    ("d15", "Glucose in sports drinks",  # distractor (glucose, exercise)
     "Sports drinks contain glucose and salt and may improve performance during long "
     "exercise in athletes."),
    ("d16", "Pancreatic cancer survival",  # distractor for q07 (pancreas)
     "Survival after pancreatic cancer remains poor, and most patients are diagnosed at a "
     "late stage."),
    # malaria
    ("d17", "Bed nets prevent malaria in children",
     "Insecticide treated bed nets reduced malaria cases and child deaths in villages in "
     "Africa."),
    ("d18", "Artemisinin resistance in malaria parasites",
     "Malaria parasites with mutations in the kelch gene are resistant to artemisinin and "
     "clear slowly from the blood."),
    ("d19", "A malaria vaccine trial",
     "A malaria vaccine given to young children in Africa reduced clinical malaria by about "
     "one third over four years."),
    ("d20", "Sickle cell trait protects against malaria",
     "People who carry the sickle cell trait have a lower risk of severe malaria, which "
     "explains why the trait is common in Africa."),
    ("d21", "Mosquito control and dengue fever",  # distractor for q08 (insecticide)
     "Spraying insecticide to control mosquitoes reduced cases of dengue fever in cities."),
    ("d22", "Antibiotic resistance in hospital bacteria",  # distractor for q09 (resistance)
     "Bacteria in hospitals are increasingly resistant to antibiotics because of mutations "
     "and gene transfer."),
    ("d23", "Iron supplementation and anemia in pregnant women",  # distractor (children)
     "Iron supplementation reduced anemia in pregnant women, and their children had higher "
     "birth weight."),
    ("d24", "Malaria in travellers returning from Africa",
     "Travellers returning from Africa with fever should be tested for malaria, because the "
     "disease can become severe within days."),
    # statins
    ("d25", "Statins lower LDL cholesterol",
     "Statins block an enzyme in the liver that makes cholesterol, and they lower LDL "
     "cholesterol by about forty percent."),
    ("d26", "Statins for the prevention of heart attacks",
     "In patients at high risk, statin therapy reduced heart attacks and strokes over five "
     "years."),
    ("d27", "Muscle pain during statin therapy",
     "In a blinded trial, muscle pain was as common with placebo as with statins, which "
     "suggests that most symptoms are not caused by the drug."),
    ("d28", "Statins and new diabetes",
     "Statin therapy slightly increased the risk of new diabetes, but the benefit for heart "
     "disease was larger than this risk."),
    ("d29", "Dietary fat and cholesterol",  # distractor for q11 (cholesterol)
     "Replacing saturated fat with olive oil lowered blood cholesterol in a diet trial."),
    ("d30", "Aspirin and heart attacks",  # distractor for q12 (heart attacks)
     "Daily aspirin did not reduce heart attacks in healthy older adults and increased "
     "bleeding."),
    ("d31", "Muscle pain after exercise",  # distractor for q13 (muscle pain)
     "Muscle pain after intense exercise peaks after two days and is not caused by lactic "
     "acid."),
    ("d32", "Blood pressure drugs and stroke",  # distractor (drugs, stroke)
     "Lowering blood pressure with drugs reduced the risk of stroke in patients with "
     "hypertension."),
    # sleep
    ("d33", "Sleep deprivation impairs memory",
     "After one night of sleep deprivation, students performed worse on memory tests than "
     "after normal sleep."),
    ("d34", "Short sleep and obesity",
     "Adults who slept less than six hours per night had a higher risk of obesity in a cohort "
     "study."),
    ("d35", "Shift work and sleep in nurses",
     "Nurses who work night shifts sleep less and report more fatigue than nurses who work "
     "during the day."),
    ("d36", "Melatonin for jet lag",
     "Melatonin taken at bedtime reduced jet lag after flights across several time zones."),
    ("d37", "Sleep apnea and blood pressure",
     "Obstructive sleep apnea is associated with high blood pressure, and treatment with a "
     "mask lowered blood pressure."),
    ("d38", "Memory in older adults",  # distractor for q14 (memory)
     "Memory declines slowly with age, and physical activity was associated with better "
     "memory in older adults."),
    ("d39", "Caffeine and alertness in drivers",  # distractor (sleep)
     "Caffeine improved alertness and reaction time in drivers, but it did not replace "
     "sleep."),
    ("d40", "Screen time and obesity in children",  # distractor for q15 (obesity)
     "Children who watched more television had a higher risk of obesity."),
)

# (query id, text). q01-q16 are train queries, q17-q24 test queries.
MINI_QUERIES: tuple[tuple[str, str], ...] = (
    ("q01", "Vitamin D supplements lower the risk of hip fractures in older adults."),
    ("q02", "Low vitamin D levels raise the risk of respiratory infections."),
    ("q03", "The skin makes vitamin D when it is exposed to sunlight."),
    ("q04", "Vitamin D regulates inflammation through a receptor on immune cells."),
    ("q05", "Obesity leads to insulin resistance and high blood glucose."),
    ("q06", "Exercise improves insulin sensitivity in type 2 diabetes."),
    ("q07", "Beta cells in the pancreas secrete insulin when glucose rises."),
    ("q08", "Bed nets treated with insecticide reduce malaria in children."),
    ("q09", "Mutations in malaria parasites cause resistance to artemisinin."),
    ("q10", "The sickle cell trait protects against severe malaria."),
    ("q11", "Statins lower LDL cholesterol by blocking an enzyme in the liver."),
    ("q12", "Statin therapy prevents heart attacks in patients at high risk."),
    ("q13", "Most muscle pain reported during statin therapy is not caused by the drug."),
    ("q14", "Sleep deprivation impairs memory."),
    ("q15", "Short sleep is associated with obesity in adults."),
    ("q16", "Melatonin reduces jet lag after long flights."),
    ("q17", "Vitamin D levels are associated with depression."),
    ("q18", "Vitamin D supplementation prevents infections in children."),
    ("q19", "Metformin reduces glucose production in the liver."),
    ("q20", "Insulin pumps give better glucose control than injections in type 1 diabetes."),
    ("q21", "Malaria in young children in Africa can be prevented."),
    ("q22", "Travellers with fever after a trip to Africa should be tested for malaria."),
    ("q23", "Statins increase the risk of diabetes."),
    ("q24", "Night shift work reduces sleep in nurses."),
)

# split -> (query id, doc id, score). Score 2 = highly relevant, 0 = judged not relevant.
MINI_QRELS: dict[str, tuple[tuple[str, str, int], ...]] = {
    "train": (
        ("q01", "d01", 2), ("q02", "d02", 1), ("q03", "d03", 1), ("q04", "d08", 1),
        ("q05", "d09", 2), ("q06", "d10", 1), ("q07", "d11", 1), ("q08", "d17", 2),
        ("q09", "d18", 1), ("q10", "d20", 1), ("q11", "d25", 2), ("q12", "d26", 1),
        ("q12", "d28", 1), ("q13", "d27", 1), ("q14", "d33", 2), ("q15", "d34", 1),
        ("q16", "d36", 1),
    ),
    "test": (
        ("q17", "d04", 1), ("q18", "d02", 1), ("q18", "d06", 0), ("q19", "d12", 1),
        ("q20", "d13", 2), ("q21", "d19", 1), ("q21", "d17", 1), ("q22", "d24", 1),
        ("q23", "d28", 1), ("q24", "d35", 1),
    ),
}
# fmt: on


def write_mini_beir(folder: Path) -> Path:
    """Write the mini BEIR dataset (corpus, queries, train/test qrels) into ``folder``."""
    (folder / "qrels").mkdir(parents=True, exist_ok=True)
    with (folder / "corpus.jsonl").open("w", encoding="utf-8") as f:
        for doc_id, title, text in MINI_CORPUS:
            f.write(json.dumps({"_id": doc_id, "title": title, "text": text}) + "\n")
    with (folder / "queries.jsonl").open("w", encoding="utf-8") as f:
        for query_id, text in MINI_QUERIES:
            f.write(json.dumps({"_id": query_id, "text": text}) + "\n")
    for split, rows in MINI_QRELS.items():
        lines = ["query-id\tcorpus-id\tscore"] + [f"{q}\t{d}\t{s}" for q, d, s in rows]
        (folder / "qrels" / f"{split}.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def build_tiny_model(folder: Path, seed: int = TINY_SEED) -> Path:
    """Build, seed and save the tiny sentence-transformers model into ``folder``.

    The BERT is first saved as a plain Hugging Face checkpoint in ``folder / "_bert"`` because
    ``Transformer`` loads from a path; the finished model is saved to ``folder / "model"``.
    """
    # Imported here so that collecting tests stays fast for test files that need no model.
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
    from transformers import AutoTokenizer, BertConfig, BertModel

    vocab_size = len(VOCAB_PATH.read_text(encoding="utf-8").splitlines())
    config = BertConfig(
        vocab_size=vocab_size,
        hidden_size=TINY_DIM,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
        pad_token_id=0,  # [PAD] is the first line of vocab.txt
    )
    torch.manual_seed(seed)
    bert_dir = folder / "_bert"
    BertModel(config).save_pretrained(bert_dir)

    # Not ``BertTokenizerFast(vocab_file=...)``: transformers 5 drops ``vocab_file`` without a
    # warning and builds a 5-token vocabulary. A folder with config.json + vocab.txt loads as
    # the BERT WordPiece tokenizer in transformers 4 and 5 alike.
    shutil.copyfile(VOCAB_PATH, bert_dir / "vocab.txt")
    tokenizer = AutoTokenizer.from_pretrained(
        str(bert_dir), do_lower_case=True, model_max_length=TINY_MAX_SEQ_LENGTH
    )
    if len(tokenizer) != vocab_size or tokenizer.pad_token_id != 0:
        raise RuntimeError(
            f"{VOCAB_PATH}: the tokenizer built from it has {len(tokenizer)} tokens and "
            f"[PAD] id {tokenizer.pad_token_id}, expected {vocab_size} and 0; check how this "
            "transformers version reads vocab.txt"
        )
    tokenizer.save_pretrained(bert_dir)

    transformer = Transformer(str(bert_dir), max_seq_length=TINY_MAX_SEQ_LENGTH)
    pooling = Pooling(transformer.get_embedding_dimension(), pooling_mode="mean")
    model = SentenceTransformer(modules=[transformer, pooling], device="cpu")
    model_dir = folder / "model"
    model.save(str(model_dir))
    shutil.rmtree(bert_dir)
    return model_dir


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Folder of the tiny random BERT sentence-transformers model (dimension 32)."""
    return build_tiny_model(tmp_path_factory.mktemp("tiny_model"))


@pytest.fixture(scope="session")
def tiny_model(tiny_model_path: Path) -> SentenceTransformer:
    """The tiny model, loaded on CPU. Shared: never train it in place."""
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(tiny_model_path), device="cpu")


@pytest.fixture(scope="session")
def mini_beir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Folder of the mini BEIR dataset; treat it as read-only (use ``mini_beir_copy``)."""
    return write_mini_beir(tmp_path_factory.mktemp("mini_beir"))


@pytest.fixture
def mini_beir_copy(mini_beir: Path, tmp_path: Path) -> Path:
    """A writable, per-test copy of the mini BEIR dataset."""
    return Path(shutil.copytree(mini_beir, tmp_path / "mini_beir"))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Remove this session's embedding-cache folder (see HONED_CACHE_DIR above)."""
    shutil.rmtree(os.environ["HONED_CACHE_DIR"], ignore_errors=True)


def default_sigint() -> None:
    """In a child process: SIGINT delivered as Ctrl-C delivers it, even from a background job.

    A shell's background job starts with SIGINT ignored, which its children inherit; Python
    then never raises KeyboardInterrupt, and a test's SIGINT crash point would not stop the child.
    """
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)
