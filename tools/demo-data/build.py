# Builds the main job's embedded data from WordNet 3.0 (Debian's wordnet-base): a pre-training corpus of one line
# per synset stating its part of speech (and, for some nouns and verbs, its semantic field), three question-answer
# tasks asking those facts in another form (balanced, so guessing the commonest answer scores little), a small
# SentencePiece tokenizer, and WordNet's licence. Deterministic. Usage:
#   apt-get download wordnet-base && dpkg-deb -x wordnet-base_*.deb wn    # and apt-get install sentencepiece
#   python3 tools/demo-data/build.py wn/usr/share/wordnet data/demo
import json, os, random, re, subprocess, sys

wordnet, out = sys.argv[1], sys.argv[2]
os.makedirs(out, exist_ok=True)
POS = {"n": "noun", "v": "verb", "a": "adjective", "s": "adjective", "r": "adverb"}
WORD = re.compile(r"^[a-z]{2,12}$")


def synsets(part):
    """(offset, pos, [lemmas], [(symbol, target offset, target pos, source/target)], gloss, lexicographer file)."""
    for line in open(os.path.join(wordnet, "data." + part), encoding="latin-1"):
        if line.startswith("  "):
            continue
        head, _, gloss = line.partition(" | ")
        f = head.split()
        offset, lexfile, pos, count = f[0], int(f[1]), f[2], int(f[3], 16)
        lemmas = [re.sub(r"\(.*\)$", "", f[4 + 2 * i]).lower() for i in range(count)]
        i = 4 + 2 * count
        pointers = [(f[i + 1 + 4 * k], f[i + 2 + 4 * k], f[i + 3 + 4 * k], f[i + 4 + 4 * k]) for k in range(int(f[i]))]
        yield offset, pos, lemmas, pointers, gloss.strip(), lexfile


def frequent(part):
    """Lemma → tagged-sense count (how often it is used), from the index file."""
    counts = {}
    for line in open(os.path.join(wordnet, "index." + part), encoding="latin-1"):
        if line.startswith("  "):
            continue
        f = line.split()
        p = int(f[3])
        counts[f[0]] = int(f[5 + p])
    return counts


def definition(gloss):
    text = gloss.split(";")[0].strip().strip('"').replace("`", "'")
    words = text.split()
    return " ".join(words[:8])


every = {}
for part in ["noun", "verb", "adj", "adv"]:
    for s in synsets(part):
        every[(s[0], "a" if s[1] == "s" else s[1])] = s
first_lemma = {key: s[2][0] for key, s in every.items()}
# WordNet's lexicographer files (lexnames): the semantic field of a synset. The two category tasks ask for these.
NOUN_KINDS = {18: "person", 5: "animal", 20: "plant", 13: "food", 6: "artifact"}
VERB_KINDS = {38: "motion", 32: "communication", 31: "thinking", 34: "eating or drinking", 39: "perceiving"}
counts = {p: frequent(p) for p in ["noun", "verb", "adj", "adv"]}

lines, pos, noun_kinds, verb_kinds = [], [], [], []
seen = set()
for part, cap, kinds in [("adj", 700, {}), ("noun", 1800, NOUN_KINDS), ("verb", 1200, VERB_KINDS), ("adv", 500, {})]:
    chosen, extra = [], []
    for offset, p, lemmas, pointers, gloss, lexfile in synsets(part):
        word = lemmas[0]
        if not WORD.match(word) or word in seen:
            continue
        seen.add(word)
        freq = counts[part].get(word, 0)
        entry = (freq, word, p, gloss, kinds.get(lexfile))
        if freq > 0:
            chosen.append(entry)
        elif kinds.get(lexfile):
            extra.append(entry)   # rare words of the asked-about kinds (most animals and plants), so each kind has enough
    chosen.sort(key=lambda c: (-c[0], c[1]))
    extra.sort(key=lambda c: c[1])
    random.seed(part)
    picked = chosen[:cap] + [e for k in set(kinds.values()) for e in random.sample([x for x in extra if x[4] == k], min(150, sum(1 for x in extra if x[4] == k)))]
    for freq, word, p, gloss, kind in picked:
        label = f"{POS[p]}, {kind}" if kind else POS[p]
        text = f"{word} ({label}): {definition(gloss)}."
        lines.append(text)
        pos.append((word, POS[p]))
        if kind and p == "n":
            noun_kinds.append((word, kind))
        if kind and p == "v":
            verb_kinds.append((word, kind))

random.seed(7)
random.shuffle(lines)
with open(os.path.join(out, "corpus.txt"), "w") as f:
    f.write("\n".join(lines) + "\n")


def task(name, pairs, prompt, dev, balance=False):
    random.seed(name)
    pairs = sorted(set(pairs))
    random.shuffle(pairs)
    if balance:
        # As many examples of each answer, so always answering the commonest one scores 1 / (number of answers).
        answers = sorted({a for _, a in pairs})
        per = min(sum(1 for _, a in pairs if a == x) for x in answers)
        pairs = [p for x in answers for p in [q for q in pairs if q[1] == x][:per]]
        random.shuffle(pairs)
    for split, chunk in [("dev", pairs[:dev]), ("train", pairs[dev:])]:
        with open(os.path.join(out, f"{name}.{split}.jsonl"), "w") as f:
            for word, answer in chunk:
                f.write(json.dumps({"taskname": name, "input": prompt.format(word=word), "output": answer}) + "\n")
    print(name, len(pairs), "pairs")


task("pos", pos, "Q: Is {word} a noun, a verb, an adjective or an adverb? A:", 200, balance=True)
task("thing", noun_kinds, "Q: Is a {word} a person, an animal, a plant, a food or an artifact? A:", 200, balance=True)
task("action", verb_kinds, "Q: Is to {word} about motion, communication, thinking, eating or drinking, or perceiving? A:", 100, balance=True)
print("corpus", len(lines), "lines")

subprocess.run(["spm_train", f"--input={os.path.join(out, 'corpus.txt')}", f"--model_prefix={os.path.join(out, 'tokenizer')}",
                "--model_type=bpe", "--vocab_size=2000", "--byte_fallback=true", "--character_coverage=1.0",
                "--unk_id=0", "--bos_id=1", "--eos_id=2", "--pad_id=-1", "--normalization_rule_name=identity",
                "--input_sentence_size=100000", "--shuffle_input_sentence=false", "--num_threads=1"],
               check=True, stderr=subprocess.DEVNULL)
os.remove(os.path.join(out, "tokenizer.vocab"))

# WordNet's licence must travel with anything built from it.
copyright = open(os.path.join(wordnet, "..", "doc", "wordnet-base", "copyright"), encoding="utf-8").read()
licence = copyright.split("License: WordNet3.0\n", 1)[1].split("\nFiles: debian/*")[0]
with open(os.path.join(out, "LICENSE-WordNet.txt"), "w") as f:
    f.write("The data in this folder (corpus.txt, the task files, and tokenizer.model trained on corpus.txt) is derived from\n"
            "WordNet 3.0 (Debian package wordnet-base) by tools/demo-data/build.py. WordNet's licence follows.\n\n")
    f.write("\n".join(l[1:] if l.startswith(" ") else l for l in licence.splitlines()).replace("\n.\n", "\n\n") + "\n")
