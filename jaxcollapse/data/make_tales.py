"""Writes tales.txt: a deterministic character corpus (seeded sentences over a fixed word list), the built-in
text of jaxcollapse.text_study. Run from the repository root: python jaxcollapse/data/make_tales.py"""
import numpy as np
rng = np.random.Generator(np.random.PCG64(20240405))
nouns = "king queen river ship sailor garden city road window letter horse castle forest storm morning evening voice heart friend child mother father brother sister stranger village harbour mountain island field candle door book bread wine song light shadow fire stone bridge tower market lamp cloud star moon sun winter summer".split()
verbs = "saw found kept left took gave heard loved feared followed watched carried opened closed remembered crossed built burned answered called".split()
adjs = "old young dark bright quiet silent cold warm little great strange gentle proud weary golden grey red green wild".split()
advs = "slowly quickly softly again never always often there here".split()
names = "Anna Thomas Mary John Clara Henry Lucy Peter Alice Robert".split()
preps = "in on under near beyond across behind with".split()
def np_(cap=False):
    r = rng.random()
    w = ("the " + (rng.choice(adjs) + " " if rng.random() < 0.4 else "") + rng.choice(nouns)) if r < 0.75 else str(rng.choice(names))
    return w
def clause():
    s = np_() + " " + rng.choice(verbs) + " " + np_()
    if rng.random() < 0.4: s += " " + rng.choice(preps) + " " + np_()
    if rng.random() < 0.3: s += " " + rng.choice(advs)
    return s
out = []
n = 0
while n < 60000:
    s = clause()
    if rng.random() < 0.35: s += rng.choice([", and ", ", but ", "; then "]) + clause()
    s = s[0].upper() + s[1:] + rng.choice([".", ".", ".", "!", "?"])
    if rng.random() < 0.15: s = '"' + s + '" said ' + str(rng.choice(names)) + "."
    out.append(s); n += len(s) + 1
    if rng.random() < 0.12: out.append("\n")
text = " ".join(out).replace(" \n ", "\n") + "\n"
open("jaxcollapse/data/tales.txt", "w").write(text)
print(len(text), len(set(text)))
