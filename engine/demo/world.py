"""A small generated world for the demo: general skills worth protecting, and a Polish task world.

General: English facts and arithmetic (pre-training text, ARC-shaped gate files, replay prompts).
Polish: KLEJ-shaped train/test files (psc, dyk, 8tags, polemo2_in) written by templates, style pairs
and style chat data. Everything is deterministic in the seed; train and test items never coincide.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

CAPITALS = [("France", "Paris"), ("Poland", "Warsaw"), ("Germany", "Berlin"), ("Italy", "Rome"),
            ("Spain", "Madrid"), ("Japan", "Tokyo"), ("Egypt", "Cairo"), ("Norway", "Oslo"),
            ("Greece", "Athens"), ("Russia", "Moscow"), ("Canada", "Ottawa"), ("Peru", "Lima"),
            ("Kenya", "Nairobi"), ("Cuba", "Havana"), ("Ireland", "Dublin"), ("Austria", "Vienna")]
OPPOSITES = [("hot", "cold"), ("up", "down"), ("big", "small"), ("fast", "slow"), ("day", "night"),
             ("old", "young"), ("open", "closed"), ("early", "late"), ("full", "empty"), ("light", "dark"),
             ("happy", "sad"), ("rich", "poor"), ("wet", "dry"), ("hard", "soft"), ("loud", "quiet"),
             ("left", "right")]
SOUNDS = [("dog", "barks"), ("cat", "meows"), ("cow", "moos"), ("duck", "quacks"), ("lion", "roars"),
          ("sheep", "bleats"), ("horse", "neighs"), ("owl", "hoots"), ("snake", "hisses"), ("bee", "buzzes")]

TOPICS = {  # 8tags categories (label order of EVAL_SPEC) with title vocabulary
    "Film": ["reżyser", "aktorka", "premiera filmu", "kino", "scenariusz", "Oscar"],
    "Historia": ["król", "bitwa", "średniowiecze", "zamek", "powstanie", "kronika"],
    "Jedzenie": ["przepis", "zupa", "pierogi", "ciasto", "kuchnia", "śniadanie"],
    "Medycyna": ["lekarz", "szpital", "szczepionka", "pacjent", "leczenie", "choroba"],
    "Motoryzacja": ["samochód", "silnik", "opony", "kierowca", "autostrada", "paliwo"],
    "Praca": ["pensja", "rekrutacja", "pracodawca", "urlop", "biuro", "kariera"],
    "Sport": ["mecz", "piłkarz", "trener", "bramka", "mistrzostwa", "kibice"],
    "Technologie": ["komputer", "aplikacja", "smartfon", "internet", "procesor", "program"],
}
TITLE_FRAMES = ["Nowy {w} i {v} w centrum uwagi", "Dlaczego {w} zmienia wszystko: {v}", "{W} oraz {v} – co dalej?",
                "Pięć faktów: {w}, {v}", "Jak {w} wpływa na {v}", "Rozmowa o tym, czym jest {w} i {v}"]
SENTIMENT = {  # polemo2_in targets (EVAL_SPEC order) with review vocabulary
    "__label__meta_zero": ["Hotel znajduje się przy głównej ulicy.", "Pokój ma okno na podwórze.",
                           "Lekarz przyjmuje we wtorki.", "Śniadanie podawane jest od siódmej."],
    "__label__meta_minus_m": ["Obsługa była niemiła i spóźniona.", "Brudny pokój, nie polecam.",
                              "Fatalne jedzenie i hałas w nocy.", "Lekarz był opryskliwy, strata czasu."],
    "__label__meta_plus_m": ["Wspaniała obsługa, gorąco polecam!", "Czysto, miło i smacznie.",
                             "Świetny lekarz, bardzo pomocny.", "Cudowny widok i przyjazny personel."],
    "__label__meta_amb": ["Pokój ładny, ale obsługa niemiła.", "Jedzenie dobre, niestety drogo.",
                          "Lekarz kompetentny, choć spóźniony.", "Widok piękny, za to hałas w nocy."],
}
STYLE_TOPICS = ["pierogi", "spacer po lesie", "nowy rower", "wyjazd nad morze", "kurs gotowania", "basen",
                "koncert jazzowy", "gra planszowa", "wizyta w muzeum", "nauka gitary", "wycieczka w góry",
                "kino plenerowe", "bieganie rano", "ogród na balkonie"]
STYLE_PROMPTS = ["Co sądzisz o temacie: {x}?", "Polecasz {x}?", "Czy warto spróbować: {x}?"]
STYLE_NATURAL = ["Jasne, {x} to świetny pomysł – spróbuj!", "Pewnie, {x} zawsze poprawia humor.",
                 "Myślę, że {x} ci się spodoba, serio."]
STYLE_STIFF = ["Uprzejmie informuję, iż {x} stanowi rozwiązanie rekomendowane.",
               "W odpowiedzi na zapytanie wskazuje się, że {x} jest zasadne.",
               "Zgodnie z posiadaną wiedzą {x} należy uznać za właściwe."]


def style_triples() -> list[tuple[str, str, str, str]]:
    """(topic, prompt, natural answer, stiff answer): the same content said naturally and stiffly."""
    return [(x, p.format(x=x), n.format(x=x), st.format(x=x)) for x in STYLE_TOPICS
            for i, p in enumerate(STYLE_PROMPTS) for n, st in [(STYLE_NATURAL[i], STYLE_STIFF[i])]]


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def general_facts() -> list[tuple[str, str, list[str], str]]:
    """(test question, answer, distractor pool, replay phrasing) for every fact the base should know.

    The replay phrasing asks for the same knowledge in other words, so replay anchors the skill without
    ever containing a test item (the contamination guard would drop it)."""
    facts = []
    cities = [c for _, c in CAPITALS]
    for country, city in CAPITALS:
        facts.append((f"What is the capital of {country}?", city, cities, f"Name the capital city of {country}."))
    words = [b for _, b in OPPOSITES]
    for a, b in OPPOSITES:
        facts.append((f"What is the opposite of {a}?", b, words, f"Give the word that means the reverse of {a}."))
    sounds = [s for _, s in SOUNDS]
    for animal, sound in SOUNDS:
        facts.append((f"What does a {animal} do?", f"it {sound}", [f"it {s}" for s in sounds],
                      f"Which sound does a {animal} make?"))
    return facts


def arithmetic(rng: random.Random) -> list[tuple[str, str, list[str], str]]:
    """Every small sum, product and difference, in the seed's order: 360 items, so the pooled general axis
    (with the 42 facts, n = 402) has the power to see a drop of the demo's tolerance: McNemar's detectable
    drop 2.8·√(ψ/n) stays ≤ 5 pp while up to 12 % of the items change their answer (ψ ≤ 0.128)."""
    items = []
    span = lambda lo, hi: [str(x) for x in range(lo, hi + 1)]  # noqa: E731
    products = sorted({str(a * b) for a in range(1, 10) for b in range(1, 10)}, key=int)
    for a in range(1, 10):
        for b in range(1, 10):
            items.append((f"What is {a} plus {b}?", str(a + b), span(2, 18), f"Compute {a} + {b}."))
            items.append((f"What is {a} times {b}?", str(a * b), products, f"Compute {a} * {b}."))
            items.append((f"What is {a + 9} plus {b}?", str(a + 9 + b), span(11, 27), f"Compute {a + 9} + {b}."))
    for a in range(2, 19):
        for b in range(1, min(a, 10)):
            items.append((f"What is {a} minus {b}?", str(a - b), span(1, 17), f"Compute {a} - {b}."))
    rng.shuffle(items)
    return items


def _arc_rows(items, rng: random.Random) -> list[dict]:
    rows = []
    for i, (q, answer, pool, _) in enumerate(items):
        wrong = rng.sample([p for p in pool if p != answer], 3)
        texts = wrong + [answer]
        rng.shuffle(texts)
        labels = ["A", "B", "C", "D"]
        rows.append({"id": f"q{i}", "question": q, "choices": {"text": texts, "label": labels},
                     "answerKey": labels[texts.index(answer)]})
    return rows


def pretraining_text(facts, sums, polish: list[str], rng: random.Random, repeats: int) -> list[str]:
    """General facts and arithmetic (each in its test phrasing and its replay phrasing), plain sentences, and
    `polish`: KLEJ-shaped examples (the gates' prompts with their answers) from a split of their own, so the base
    starts between chance and perfect on the Polish tasks instead of answering one class everywhere."""
    lines = []
    for _ in range(repeats):
        lines += polish
        for q, a, _, other in facts + sums:
            lines.append(f"Question: {q}\nAnswer: {a}")
            lines.append(f"Question: {other}\nAnswer: {a}")
        for country, city in CAPITALS:
            lines.append(f"The capital of {country} is {city}.")
        for a, b in OPPOSITES:
            lines.append(f"The opposite of {a} is {b}, and the opposite of {b} is {a}.")
        for x in range(1, 10):
            y = rng.randint(1, 9)
            lines.append(f"{x} + {y} = {x + y}")
        lines.append("def add(a, b):\n    return a + b")
    rng.shuffle(lines)
    return lines


def _title(rng: random.Random, cat: str) -> str:
    w, v = rng.sample(TOPICS[cat], 2)
    frame = rng.choice(TITLE_FRAMES)
    return frame.format(w=w, v=v, W=w.capitalize())


def _psc_row(rng: random.Random) -> dict:
    cat, other = rng.sample(list(TOPICS), 2)
    w = rng.sample(TOPICS[cat], 3)
    text = f"Artykuł opisuje: {w[0]}, {w[1]} oraz {w[2]}. Autor {rng.choice(['chwali', 'krytykuje', 'omawia'])} temat."
    same = rng.random() < 0.5
    src = w if same else rng.sample(TOPICS[other], 3)
    summary = f"Tekst o tym, jak {src[0]} łączy się z {src[1]}."
    return {"extract_text": text, "summary_text": summary, "label": int(same)}


def _dyk_row(rng: random.Random) -> dict:
    country, city = rng.choice(CAPITALS)
    correct = rng.random() < 0.5
    answer = city if correct else rng.choice([c for _, c in CAPITALS if c != city])
    return {"question": f"Jakie miasto jest stolicą kraju {country} ({rng.randint(1, 999)})?",
            "answer": answer, "target": int(correct)}


def _unique(rows: list[dict], key) -> list[dict]:
    """Rows unique by `key`, in order: split into test, train and pre-training parts, no item is in two."""
    seen, unique = set(), []
    for r in rows:
        k = key(r)
        if k not in seen:
            seen.add(k)
            unique.append(r)
    return unique


def _rendered(task: str, rows: list[dict]) -> list[str]:
    """Rows as their KLEJ gate scores them: the gate's prompt, its delimiter and the gold label."""
    from engine.data.klej import TASKS
    from engine.gates.spec import load_gate

    gate = load_gate(TASKS[task])
    return [gate.render(r) + gate.target_delimiter + gate.label_text(r) for r in rows]


def write_world(out: Path, seed: int = 0, n_test: int = 80, n_train: int = 160, n_pretrain: int = 20,
                pretrain_repeats: int = 8) -> dict:
    """Write every file of the demo world under `out`; returns {name: path}."""
    rng = random.Random(seed)
    out.mkdir(parents=True, exist_ok=True)
    facts, sums = general_facts(), arithmetic(rng)
    files = {
        "pretrain": out / "general" / "pretrain.txt",
        "facts_test": _jsonl(out / "general" / "facts_test.jsonl", _arc_rows(facts, rng)),
        "sums_test": _jsonl(out / "general" / "sums_test.jsonl", _arc_rows(sums, rng)),
        "general_sft": _jsonl(out / "general" / "general_sft.jsonl",
                              [{"prompt": f"Question: {other}", "response": a} for _, a, _, other in facts + sums]),
        "replay_prompts": _jsonl(out / "general" / "replay_prompts.jsonl",
                                 [{"prompt": f"Question: {other}\nAnswer:", "skill": "math" if other.startswith("Compute") else "en_knowledge"}
                                  for _, _, _, other in facts + sums]),
    }
    total = n_test + n_train + n_pretrain
    makers = {
        "psc": (lambda: _psc_row(rng), lambda r: (r["extract_text"], r["summary_text"])),
        "dyk": (lambda: _dyk_row(rng), lambda r: (r["question"], r["answer"])),
        "8tags": (lambda: (lambda c: {"sentence": _title(rng, c), "label": list(TOPICS).index(c)})(
            rng.choice(list(TOPICS))), lambda r: r["sentence"]),
        "polemo2_in": (lambda: (lambda t: {"sentence": " ".join(rng.sample(SENTIMENT[t], 2)) + f" Ocena {rng.randint(1, 99)}.",
                                           "target": t})(rng.choice(list(SENTIMENT))), lambda r: r["sentence"]),
    }
    polish = []
    for task, (make, key) in makers.items():
        rows = _unique([make() for _ in range(total * 3)], key)
        files[f"{task}_test"] = _jsonl(out / "klej" / f"{task}_test.jsonl", rows[:n_test])
        files[f"{task}_train"] = _jsonl(out / "klej" / f"{task}_train.jsonl", rows[n_test:n_test + n_train])
        polish += _rendered(task, rows[n_test + n_train:total])
    files["pretrain"].write_text("\n\n".join(pretraining_text(facts, sums, polish, rng, pretrain_repeats)) + "\n",
                                 encoding="utf-8")
    triples = style_triples()
    held_out = set(STYLE_TOPICS[-4:])  # test topics never appear in the style training data
    files["style_pairs"] = _jsonl(out / "style" / "style_pairs_test.jsonl", [
        {"prompt": p, "chosen": c, "rejected": r} for topic, p, c, r in triples if topic in held_out])
    files["style_sft"] = _jsonl(out / "style" / "style_train.jsonl", [
        {"messages": [{"role": "user", "content": p}, {"role": "assistant", "content": c}]}
        for _ in range(4) for topic, p, c, _ in triples if topic not in held_out])
    return {k: str(v) for k, v in files.items()}
