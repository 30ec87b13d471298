"""Regenerate ``tests/data/vocab.txt``, the WordPiece vocabulary of the tests' tiny BERT.

Run from anywhere::

    python tests/data/make_vocab.py

The vocabulary is small (about 900 lines) so the tiny model's embedding matrix stays tiny,
yet every lowercase ASCII text tokenises without ``[UNK]``: each single character and its
``##`` continuation is in it, so an unknown word falls back to pieces instead of ``[UNK]``.
Whole words cover common English and biomedical vocabulary, including every word of the mini
BEIR dataset in ``tests/conftest.py`` (``tests/test_fixtures.py`` checks that, and that this
script reproduces the checked-in file). To support new mini-dataset words, add them to
``ENGLISH`` or ``BIOMEDICAL`` below and rerun the script.

Order: the five special tokens (``[PAD]`` = 0, ``[UNK]`` = 1, ``[CLS]`` = 2, ``[SEP]`` = 3,
``[MASK]`` = 4; ``BertTokenizerFast`` finds them by name, so BERT's own ids are not needed),
then single characters, then ``##`` pieces, then whole words sorted alphabetically. The output
is deterministic: same script, same file.
"""

from __future__ import annotations

import string
import sys
from pathlib import Path

VOCAB_PATH = Path(__file__).resolve().parent / "vocab.txt"

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")

# Characters a lowercasing BERT tokenizer can emit for ASCII text; punctuation is split off
# as its own token, so it needs no ``##`` form.
CHARACTERS = string.ascii_lowercase + string.digits + string.punctuation

# Common word endings, so that inflected forms cost two tokens instead of many.
SUFFIXES = """
s es ed ing ly er ers est al ic ical ity ities ness ment ments tion tions ation ations ive
ous ful less able ible ize ized ise ised ase ases in ine ines ol oma omas itis emia logy
logical ist ists ia ary ory ure ance ence ant ent y
"""

ENGLISH = """
a about above across after again against age ago all almost along also although always
among an and another any are around as at away back based be because become been before
being below better between both but by call called can cannot case cases change changed
changes child children come common compared could country data day days did different do
does done down during each early effect effects either end enough even every evidence
example far few find first five for found four from full further general get give given go
good great group groups had half has have he her here high higher highest his how however
i if important in increase increased increases increasing independent into is it its just
large larger last late later least less level levels life like little live long longer low
lower lowered lowering lowers made mainly make makes many may me men more most much must my
near need never new next night no non normal not now number of off often old older on once
one only or other our out over own part people per percent person place point poor
possible present problem rate rates rather reduce reduced reduces reducing regular remains
report reported result results right same second see several severe she short should show
showed shown side similar since six slightly slowly small so some start state still strong
such suggests take taken ten than that the their them then there these they thing third
this those three through time times to too two under until up upon use used using very was
way we week weekly weeks well were what when where whether which while who why will with
within without woman women work world worse year years yet you young zero
able across activity adjustment against answer area areas ask became become began behind
believe benefit best big body book both bring build car carry cause caused causes certain
cities city clear close cold community contain control controls country day daily deaths
drinks drivers due explain explains express far fast fat fine five flights forty free give
hand hard head healthy hours house idea keep kind know known land leads let line list live
long loss main making mean measure measured meal months move name nets night often oil olive
open order paper peaks percent performance performed physical place play poor put raise
raises reaction release replace replacing report response returning rise rises rising salt
school screen set shift shifts shortened slept speed sports spraying stage start stones
strength students taken television tested tests thing transfer travellers trip twelve type
view villages walking watched weight why winter word young zones declines improve improved
improves increasingly jet pressure risk risks
"""

BIOMEDICAL = """
abdominal absorption acid active acute adipose adult adults adverse aerobic africa aging
alcohol alertness allele alleles anemia antibiotic antibiotics antibody antibodies antigen
apnea apoptosis artemisinin artery arteries aspirin associated association asthma athletes
attack attacks autism bacteria bacterial bed bedtime beta biomarker biopsy birth bleeding
blinded block blocking blood bone bones brain breast c caffeine calcium cancer cancers
carbohydrate cardiac cardiovascular cell cells chemotherapy cholesterol chromosome chronic
clinical cohort colon complication complications controlled coronary cortex cortisol cytokine
cytokines d death deficiency deficient dementia dengue density depression deprivation
diabetes diagnosed diagnosis diagnostic diet dietary disease diseases disorder disorders dna
dosage dose doses drug drugs duration embryo embryonic endothelial enzyme enzymes epidemic
epidemiology equator exercise expression exposed exposure fatigue fever fibrosis fracture
fractures gastric gene genes genetic genome glucose gut heart hepatic hip hiv hormone
hormones hospital hospitals host human humans hypertension hypothesis immune immunity impairs
incidence infant infants infected infection infections inflammation inflammatory influenza
inhibitor inhibitors injection injections insecticide insulin intake intense intervention
intestinal iron kelch kidney kidneys lactic lag ldl lesion lesions leukemia ligand lipid
lipids liver lung lungs lymphocyte lymphocytes macrophage macrophages malaria mask
melatonin membrane memory metabolic metabolism metformin mice microbiome mineral
mitochondria mitochondrial molecular mortality mosquito mosquitoes mouse mrna muscle
muscles mutation mutations neural neuron neurons nurses nutrition obesity obese
observational obstructive oral outcome outcomes oxygen pain pancreas pancreatic parasite
parasites pathway pathways patient patients pediatric phenotype physician placebo plasma
pneumonia pregnancy pregnant prevalence prevent prevented preventing prevention prevents
produces production prognosis protein proteins protects pulmonary pump pumps randomized
receptor receptors regulate regulates regulation renal resistance resistant respiratory
rna saturated screening secrete secretion sensitivity serum sickle signaling skin sleep
smoking statin statins stem stroke strokes study studies sunlight sunscreen supplement
supplementation supplements surgery survival symptom symptoms syndrome synthesis therapy
therapies tissue tissues trait transcription transmission transplant treated treatment
treatments trial trials tuberculosis tumor tumors vaccine vaccination vaccines viral virus
viruses vitamin weight
"""


def build_vocab() -> list[str]:
    """Return the vocabulary, one token per entry, in file order, without duplicates."""
    pieces = [f"##{c}" for c in string.ascii_lowercase + string.digits]
    pieces += [f"##{s}" for s in SUFFIXES.split()]
    words = sorted(set(ENGLISH.split()) | set(BIOMEDICAL.split()))
    tokens = [*SPECIAL_TOKENS, *CHARACTERS, *pieces, *words]
    # Single letters such as "a", "c" and "d" are words too: keep their first occurrence.
    return list(dict.fromkeys(tokens))


def main() -> int:
    """Write ``vocab.txt`` next to this script and report its size."""
    vocab = build_vocab()
    VOCAB_PATH.write_text("\n".join(vocab) + "\n", encoding="utf-8")
    print(f"wrote {VOCAB_PATH} ({len(vocab)} tokens)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
