#include "seq2seq.hpp"

namespace rwd {

// First commit: the API only (nn/seq2seq.hpp); the implementation follows.
namespace {
[[noreturn]] void not_yet(const char* what) { throw ValueError(std::string("Seq2Seq::") + what + ": not yet implemented"); }
}  // namespace

TokenBatch pad_tokens(const std::vector<Indices>&, std::int64_t, std::int64_t, Dtype) { not_yet("pad_tokens"); }
Seq2Seq::Seq2Seq(std::size_t source_vocab, std::size_t target_vocab, std::shared_ptr<Recurrent>, Seq2SeqOptions options,
                 Generator&)
    : m_source_vocab(source_vocab), m_target_vocab(target_vocab), m_options(std::move(options)) {
  not_yet("Seq2Seq");
}
Tensor Seq2Seq::forward(const Tensor&, const Tensor&, const Tensor&) { not_yet("forward"); }
Seq2SeqOutput Seq2Seq::run(const Tensor&, const Tensor&, const Tensor&) { not_yet("run"); }
Tensor Seq2Seq::forward(const Tensor&) { not_yet("forward"); }
Tensor Seq2Seq::loss(const Tensor&, const Tensor&, const Tensor&) { not_yet("loss"); }
Encoded Seq2Seq::encode(const Tensor&, const Tensor&) { not_yet("encode"); }
Encoded Seq2Seq::encode_embedded(const Tensor&, const Tensor&, const std::vector<State>&) { not_yet("encode_embedded"); }
DecoderState Seq2Seq::start(const Encoded&) const { not_yet("start"); }
DecoderStep Seq2Seq::step(const Tensor&, const DecoderState&, const Encoded&) { not_yet("step"); }
DecoderStep Seq2Seq::step_embedded(const Tensor&, const DecoderState&, const Encoded&) { not_yet("step_embedded"); }
std::vector<Hypothesis> Seq2Seq::greedy(const Tensor&, const Tensor&, DecodeOptions) { not_yet("greedy"); }
std::vector<Hypothesis> Seq2Seq::beam_search(const Tensor&, const Tensor&, DecodeOptions) { not_yet("beam_search"); }
std::string Seq2Seq::repr() const { return "Seq2Seq(…)"; }
Attention& Seq2Seq::attention() const { not_yet("attention"); }
Tensor Seq2Seq::drop(const Tensor& x) { return x; }
Tensor Seq2Seq::check_source(const Tensor& s, const Tensor&, const char*) const { return s; }

}  // namespace rwd
