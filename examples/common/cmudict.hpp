// examples/common/cmudict.hpp — the CMU Pronouncing Dictionary as grapheme-to-phoneme data: reading
// Festival's copy, vocabularies, a seeded split by word, padded batches, and the two error rates.
//
// The file. Debian's festlex-cmu ships cmudict 0.4 compiled for Festival,
// /usr/share/festival/dicts/cmu/cmudict-0.4.out: a first line `MNCL` (Festival's header), then one
// entry per line, sorted, in Lisp syntax —
//
//   ("advertise" nil (((ae d) 1) ((v er) 0) ((t ay z) 1)))
//    word        POS  syllables: ((phones…) stress)
//
// 105,901 entries over 40 phones (Festival's set: CMU's 39 and `ax`, the reduced vowel, which Festival
// writes where CMU has unstressed AH). The part of speech (nil for 99% of entries; n, v, j, dt, …)
// tells apart the 235 spellings that have several entries — "abject" n and v, "live" j and v — and
// that is the only way this file lists several pronunciations of a word (CMU's "word(2)" variants were
// merged by Festival). So a word's references are the distinct pronunciations of all its entries:
// 168 words keep two or more (abject's two differ only in stress, so it keeps one).
// 126 entries are capitalised (AWOL, Caltech, dIsere for d'Isère); spelling is folded to lowercase,
// so "Dak" and "dak", if both present, are one word with both pronunciations.
//
// Stress is DROPPED: the syllable's stress digit (0, 1, 2) and the syllable boundaries are read and
// checked, then only the phones are kept, so a target is a plain phone sequence (as in the published
// G2P figures on CMUdict, which score phones without stress).
//
// Errors. Phoneme error rate: the edit distance (Levenshtein: insertions, deletions, substitutions, each
// 1) between the prediction and the closest reference, summed over the words, over the summed lengths of
// those references. Word error rate: the fraction of words whose prediction equals none of the
// references. A bad line throws IOError naming the file, the line number and what was expected.
#pragma once

#include <algorithm>
#include <cctype>
#include <cstddef>
#include <cstdint>
#include <fstream>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <rewind.hpp>

namespace cmu {

using rwd::Indices;

/// Where Debian's festlex-cmu puts the dictionary.
inline const char* const default_path = "/usr/share/festival/dicts/cmu/cmudict-0.4.out";

/// Symbols ↔ ids, with the three specials first: pad 0, bos 1, eos 2 (what rwd::Seq2Seq expects).
struct Vocab {
  static constexpr std::int64_t pad = 0, bos = 1, eos = 2;
  std::vector<std::string> symbols{"<pad>", "<bos>", "<eos>"};
  std::map<std::string, std::int64_t> ids{{"<pad>", 0}, {"<bos>", 1}, {"<eos>", 2}};

  /// The id of `s`, added when new.
  std::int64_t add(const std::string& s) {
    const auto [it, added] = ids.emplace(s, static_cast<std::int64_t>(symbols.size()));
    if (added) symbols.push_back(s);
    return it->second;
  }
  std::size_t size() const { return symbols.size(); }
  /// The symbols of `seq` joined by `sep` (specials included as written).
  std::string str(const Indices& seq, const std::string& sep = " ") const {
    std::string s;
    for (std::size_t i = 0; i < seq.size(); ++i)
      s += (i ? sep : "") + (seq[i] >= 0 && static_cast<std::size_t>(seq[i]) < symbols.size()
                                 ? symbols[static_cast<std::size_t>(seq[i])]
                                 : "<" + std::to_string(seq[i]) + ">");
    return s;
  }
};

/// A spelling and every distinct pronunciation of it (phone ids, stress dropped), in file order.
struct Word {
  std::string spelling;  ///< lowercase
  Indices chars;         ///< character ids of the spelling
  std::vector<Indices> pronunciations;
};

/// The whole dictionary: words sorted by spelling, and both vocabularies.
struct Dictionary {
  std::vector<Word> words;
  Vocab chars, phones;
  std::size_t entries = 0;        ///< lines read (entries of the file)
  std::size_t several = 0;        ///< words with more than one distinct pronunciation
};

namespace detail {

/// Reads one entry, `("word" pos (((ph ph) 1) ((ph) 0)))`, into spelling and phones; throws IOError
/// naming `where` (file:line) on anything else.
inline void parse_entry(const std::string& line, const std::string& where, std::string& spelling,
                        std::vector<std::string>& phones) {
  std::size_t i = 0;
  auto fail = [&](const std::string& what) {
    throw rwd::IOError("cmudict: " + where + ": " + what + " at column " + std::to_string(i + 1) + " in: " + line);
  };
  auto skip_spaces = [&] {
    while (i < line.size() && line[i] == ' ') ++i;
  };
  auto expect = [&](char c) {
    skip_spaces();
    if (i >= line.size() || line[i] != c) fail(std::string("expected '") + c + "'");
    ++i;
  };
  auto atom = [&] {
    skip_spaces();
    const std::size_t from = i;
    while (i < line.size() && line[i] != ' ' && line[i] != '(' && line[i] != ')' && line[i] != '"') ++i;
    if (i == from) fail("expected a symbol");
    return line.substr(from, i - from);
  };
  expect('(');
  expect('"');
  const std::size_t close = line.find('"', i);
  if (close == std::string::npos || close == i) fail("expected a quoted, non-empty word");
  spelling = line.substr(i, close - i);
  i = close + 1;
  atom();  // the part of speech
  expect('(');
  phones.clear();
  skip_spaces();
  while (i < line.size() && line[i] == '(') {  // a syllable: ((phones…) stress)
    expect('(');
    expect('(');
    skip_spaces();
    if (i < line.size() && line[i] == ')') fail("expected a phone (empty syllable)");
    while (skip_spaces(), i < line.size() && line[i] != ')') phones.push_back(atom());
    expect(')');
    const std::string stress = atom();
    if (stress != "0" && stress != "1" && stress != "2") fail("expected a stress 0, 1 or 2, not '" + stress + "'");
    expect(')');
    skip_spaces();
  }
  if (phones.empty()) fail("expected at least one syllable");
  expect(')');
  expect(')');
  skip_spaces();
  if (i != line.size()) fail("expected the end of the line");
}

}  // namespace detail

/// Reads the dictionary at `path` (see the top of this file). Throws IOError when the file cannot be
/// opened, naming it, and on a malformed line, naming the file and the line.
inline Dictionary load(const std::string& path = default_path) {
  std::ifstream in(path);
  if (!in) throw rwd::IOError("cmudict: cannot open " + path + " (Debian: apt-get install festlex-cmu)");
  std::map<std::string, std::vector<std::vector<std::string>>> by_word;  // sorted, as the split needs
  Dictionary d;
  std::string line, spelling;
  std::vector<std::string> phones;
  for (std::size_t n = 1; std::getline(in, line); ++n) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || (n == 1 && line == "MNCL")) continue;
    detail::parse_entry(line, path + ":" + std::to_string(n), spelling, phones);
    for (char& c : spelling) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    auto& prons = by_word[spelling];
    if (std::find(prons.begin(), prons.end(), phones) == prons.end()) prons.push_back(phones);
    ++d.entries;
  }
  if (d.entries == 0) throw rwd::IOError("cmudict: " + path + " holds no entries");
  // Ids in sorted order of the symbols, so they do not depend on the order of the file.
  std::map<std::string, int> char_set, phone_set;
  for (const auto& [w, prons] : by_word) {
    for (char c : w) char_set[std::string(1, c)];
    for (const auto& p : prons)
      for (const auto& ph : p) phone_set[ph];
  }
  for (const auto& [c, _] : char_set) d.chars.add(c);
  for (const auto& [p, _] : phone_set) d.phones.add(p);
  for (const auto& [w, prons] : by_word) {
    Word word{w, {}, {}};
    for (char c : w) word.chars.push_back(d.chars.ids.at(std::string(1, c)));
    for (const auto& p : prons) {
      Indices ids;
      for (const auto& ph : p) ids.push_back(d.phones.ids.at(ph));
      word.pronunciations.push_back(std::move(ids));
    }
    d.several += prons.size() > 1;
    d.words.push_back(std::move(word));
  }
  return d;
}

/// Word indices of the three parts.
struct Split {
  std::vector<std::size_t> train, val, test;
};

/// A seeded split by word: the sorted words shuffled with rwd::Generator(seed) (Fisher–Yates from the
/// back, as the other examples), then the first 90% train, the next 5% validation, the rest test.
inline Split split(const Dictionary& d, std::uint32_t seed) {
  std::vector<std::size_t> order(d.words.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  rwd::Generator gen(seed);
  for (std::size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[gen.integer(i)]);
  const std::size_t n_train = order.size() * 90 / 100, n_val = order.size() * 5 / 100;
  Split s;
  s.train.assign(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(n_train));
  s.val.assign(order.begin() + static_cast<std::ptrdiff_t>(n_train),
               order.begin() + static_cast<std::ptrdiff_t>(n_train + n_val));
  s.test.assign(order.begin() + static_cast<std::ptrdiff_t>(n_train + n_val), order.end());
  return s;
}

/// A padded batch: spellings (S, B) with their mask, and target phones (T, B) — the word's first
/// pronunciation, then eos — with theirs (rwd::pad_tokens; pad is 0).
struct Batch {
  rwd::TokenBatch source, target;
  std::vector<std::size_t> words;  ///< the words' indices in the dictionary, column by column
};

/// The words order[first … first + count) as one batch. Training uses the first pronunciation of a
/// word with several (0.2% of the words); scoring compares with all of them.
inline Batch make_batch(const Dictionary& d, const std::vector<std::size_t>& order, std::size_t first,
                        std::size_t count) {
  std::vector<Indices> src, tgt;
  Batch b;
  for (std::size_t k = first; k < first + count; ++k) {
    const Word& w = d.words[order[k]];
    src.push_back(w.chars);
    tgt.push_back(w.pronunciations.front());
    b.words.push_back(order[k]);
  }
  b.source = rwd::pad_tokens(src, Vocab::pad);
  b.target = rwd::pad_tokens(tgt, Vocab::pad, Vocab::eos);
  return b;
}

/// Levenshtein distance: the fewest insertions, deletions and substitutions that turn a into b.
inline std::size_t edit_distance(const Indices& a, const Indices& b) {
  std::vector<std::size_t> row(b.size() + 1);  // row[j] = distance(a[:i], b[:j])
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = row[0];  // distance(a[:i-1], b[:j-1])
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = up;
    }
  }
  return row[b.size()];
}

/// Phoneme and word error rates, accumulated word by word.
struct ErrorRates {
  std::size_t edits = 0, reference_phones = 0, words = 0, words_wrong = 0;

  /// Scores one prediction against a word's references: the closest one (fewest edits; the first on a
  /// tie) gives the edits and the length; the word is right when some reference equals the prediction.
  void add(const Indices& predicted, const std::vector<Indices>& references) {
    std::size_t best = SIZE_MAX, length = 0;
    for (const Indices& r : references) {
      const std::size_t e = edit_distance(predicted, r);
      if (e < best) best = e, length = r.size();
    }
    edits += best;
    reference_phones += length;
    ++words;
    words_wrong += best != 0;
  }
  double per() const { return static_cast<double>(edits) / static_cast<double>(reference_phones); }
  double wer() const { return static_cast<double>(words_wrong) / static_cast<double>(words); }
};

}  // namespace cmu
