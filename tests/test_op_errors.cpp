// Every op's shape, dtype and index errors: the right rwd exception type, and a message that names
// the op, the operands' shapes and the rule (STYLE rule 4) — checked at record time in every build.
#include <doctest/doctest.h>

#include "support.hpp"

#include <functional>
#include <initializer_list>
#include <string>
#include <vector>

#include <rewind.hpp>

using namespace rwd;

namespace {

Tensor zeros(const Shape& s, Dtype dtype = float64) { return Tensor::zeros(s, dtype); }

/// Checks that `message` starts with "op: " and contains every part.
void check_message(const std::string& message, const std::string& op, std::initializer_list<std::string> parts) {
  CAPTURE(message);
  CHECK(message.rfind(op + ": ", 0) == 0);
  for (const std::string& p : parts) {
    CAPTURE(p);
    CHECK(message.find(p) != std::string::npos);
  }
}

}  // namespace

// ---- the two messages STYLE.md spells out, word for word ----

TEST_CASE("matmul: lhs (3, 4) and rhs (5, 2): the exact message") {
  const std::string m = message_of<ShapeError>([] { matmul(zeros({3, 4}), zeros({5, 2})); });
  CHECK(m == "matmul: lhs (3, 4) and rhs (5, 2): lhs.shape[1] (4) must equal rhs.shape[0] (5)");
}

TEST_CASE("add((3, 4), (5,)): the exact broadcast message") {
  const std::string m = message_of<ShapeError>([] { add(zeros({3, 4}), zeros({5})); });
  CHECK(m == "add: lhs (3, 4) and rhs (5,): cannot broadcast: dimension -1 is 4 in lhs and 5 in rhs "
             "(sizes must match or one must be 1)");
}

// ---- arithmetic ----

TEST_CASE("add, sub, mul, div, pow(x, p tensor), where: broadcast errors name the op and both shapes") {
  const Tensor a = zeros({2, 3}), b = zeros({4, 1, 2});
  struct Case {
    const char* op;
    std::function<Tensor()> f;
  };
  const Case cases[] = {{"add", [&] { return add(a, b); }},          {"sub", [&] { return sub(a, b); }},
                        {"mul", [&] { return mul(a, b); }},          {"div", [&] { return div(a, b); }},
                        {"pow", [&] { return pow(a, b); }},          {"add", [&] { return a + b; }},
                        {"mul", [&] { return b * a; }},              {"where", [&] { return where(a, a, b); }},
                        {"where", [&] { return where(b, a, a); }}};
  for (const Case& c : cases) {
    CAPTURE(c.op);
    check_message(message_of<ShapeError>(c.f), c.op, {"(2, 3)", "(4, 1, 2)", "cannot broadcast", "dimension -1"});
  }
}

TEST_CASE("add with float32 and float64 operands: DtypeError naming the op and both dtypes") {
  const std::string m = message_of<DtypeError>([] { add(zeros({2}, float32), zeros({2}, float64)); });
  CHECK(m == "add: lhs is float32 and rhs is float64: operands must share a dtype (convert one with .to())");
  check_message(message_of<DtypeError>([] { mul(zeros({2}, float64), zeros({2}, float32)); }), "mul",
                {"float64", "float32"});
  check_message(message_of<DtypeError>([] { sub(zeros({2}, float64), zeros({2}, float32)); }), "sub", {"float64", "float32"});
  check_message(message_of<DtypeError>([] { div(zeros({2}, float64), zeros({2}, float32)); }), "div", {"float64", "float32"});
  check_message(message_of<DtypeError>([] { pow(zeros({2}, float64), zeros({2}, float32)); }), "pow", {"float64", "float32"});
  check_message(message_of<DtypeError>([] { where(zeros({2}), zeros({2}, float64), zeros({2}, float32)); }), "where",
                {"float64", "float32"});
  check_message(message_of<DtypeError>([] { matmul(zeros({2, 2}, float32), zeros({2, 2}, float64)); }), "matmul",
                {"float32", "float64"});
  check_message(message_of<DtypeError>([] { concat({zeros({2}, float32), zeros({2}, float64)}); }), "concat",
                {"float32", "float64"});
  check_message(message_of<DtypeError>([] { stack({zeros({2}, float32), zeros({2}, float64)}); }), "stack",
                {"float32", "float64"});
}

TEST_CASE("clamp(x, lo, hi): lo > hi is a ValueError") {
  check_message(message_of<ValueError>([] { clamp(zeros({2}), 1, -1); }), "clamp", {"lo", "hi"});
}

// ---- matmul ----

TEST_CASE("matmul: rank, batch and transposed-inner-dimension errors") {
  check_message(message_of<ShapeError>([] { matmul(zeros({3}), zeros({3, 2})); }), "matmul",
                {"lhs (3,)", "rhs (3, 2)", "2-D matrices", "3-D batches"});
  check_message(message_of<ShapeError>([] { matmul(zeros({2, 3, 4}), zeros({4, 2})); }), "matmul",
                {"lhs (2, 3, 4)", "rhs (4, 2)"});
  CHECK(message_of<ShapeError>([] { matmul(zeros({2, 3, 4}), zeros({3, 4, 5})); }) ==
        "matmul: lhs (2, 3, 4) and rhs (3, 4, 5): lhs.shape[0] (2) must equal rhs.shape[0] (3) (the batch size)");
  CHECK(message_of<ShapeError>([] { matmul(zeros({4, 3}), zeros({5, 2}), true, false); }) ==
        "matmul: lhsᵀ (4, 3) and rhs (5, 2): lhs.shape[0] (4) must equal rhs.shape[0] (5)");
  CHECK(message_of<ShapeError>([] { matmul(zeros({3, 4}), zeros({2, 5}), false, true); }) ==
        "matmul: lhs (3, 4) and rhsᵀ (2, 5): lhs.shape[1] (4) must equal rhs.shape[1] (5)");
  CHECK(message_of<ShapeError>([] { matmul(zeros({2, 4, 3}), zeros({2, 2, 5}), true, true); }) ==
        "matmul: lhsᵀ (2, 4, 3) and rhsᵀ (2, 2, 5): lhs.shape[1] (4) must equal rhs.shape[2] (5)");
}

// ---- shape ops ----

TEST_CASE("reshape: element-count mismatch names both shapes and both counts") {
  CHECK(message_of<ShapeError>([] { reshape(zeros({2, 3}), {4}); }) ==
        "reshape: input (2, 3) and target (4,): cannot reshape 6 elements into 4");
  check_message(message_of<ShapeError>([] { reshape(zeros({}), {2}); }), "reshape", {"()", "(2,)", "1", "2"});
}

TEST_CASE("permute: wrong number of axes, repeated axis, axis out of range") {
  check_message(message_of<ShapeError>([] { permute(zeros({2, 3, 4}), {1, 0}); }), "permute",
                {"(2, 3, 4)", "2 axes given for 3 dimensions"});
  check_message(message_of<ShapeError>([] { permute(zeros({2, 3}), {1, 1}); }), "permute", {"(2, 3)", "axis 1 is listed twice"});
  check_message(message_of<ShapeError>([] { permute(zeros({2, 3}), {0, -3}); }), "permute", {"(2, 3)", "axis -3", "out of range"});
}

TEST_CASE("broadcast_to: a dimension that is neither equal nor 1, or too few target dimensions") {
  check_message(message_of<ShapeError>([] { broadcast_to(zeros({3, 2}), {3, 4}); }), "broadcast_to",
                {"input (3, 2)", "target (3, 4)", "must equal", "or be 1"});
  check_message(message_of<ShapeError>([] { broadcast_to(zeros({2, 3}), {3}); }), "broadcast_to",
                {"input (2, 3)", "target (3,)"});
}

TEST_CASE("slice and unslice: bad bounds, zero step, bad axis, wrong gradient shape") {
  check_message(message_of<ShapeError>([] { slice(zeros({2, 5}), 1, 2, 6); }), "slice",
                {"(2, 5)", "[2:6]", "start ≤ stop ≤ 5", "axis 1"});
  check_message(message_of<ShapeError>([] { slice(zeros({2, 5}), 1, 3, 2); }), "slice", {"(2, 5)", "[3:2]"});
  check_message(message_of<ShapeError>([] { slice(zeros({2, 5}), 1, 0, 5, 0); }), "slice", {"(2, 5)", "step"});
  check_message(message_of<ShapeError>([] { slice(zeros({2, 5}), 2, 0, 1); }), "slice",
                {"(2, 5)", "axis 2 is out of range for 2 dimensions"});
  check_message(message_of<ShapeError>([] { unslice(zeros({2, 3}), {2, 5}, 1, 1, 5, 2); }), "unslice",
                {"gradient (2, 3)", "(2, 5)", "(2, 2)"});
}

TEST_CASE("concat: mismatched dimensions, different ranks, bad axis, nothing to join") {
  CHECK(message_of<ShapeError>([] { concat({zeros({2, 3}), zeros({2, 4})}, 0); }) ==
        "concat: tensor 0 (2, 3) and tensor 1 (2, 4): all dimensions but axis 0 must match");
  check_message(message_of<ShapeError>([] { concat({zeros({2, 3}), zeros({2, 3}), zeros({3, 3})}, 1); }), "concat",
                {"tensor 0 (2, 3)", "tensor 2 (3, 3)", "axis 1"});
  check_message(message_of<ShapeError>([] { concat({zeros({2, 3}), zeros({2, 3, 1})}, 0); }), "concat",
                {"(2, 3)", "(2, 3, 1)"});
  check_message(message_of<ShapeError>([] { concat({zeros({2, 3}), zeros({2, 3})}, 2); }), "concat",
                {"(2, 3)", "axis 2 is out of range"});
  check_message(message_of<ValueError>([] { concat({}, 0); }), "concat", {"no tensors"});
}

TEST_CASE("stack: different shapes, bad axis, nothing to stack") {
  check_message(message_of<ShapeError>([] { stack({zeros({2, 3}), zeros({3, 2})}); }), "stack",
                {"tensor 0 (2, 3)", "tensor 1 (3, 2)", "same shape"});
  check_message(message_of<ShapeError>([] { stack({zeros({2}), zeros({2})}, 2); }), "stack", {"(2,)", "axis 2", "out of range"});
  check_message(message_of<ValueError>([] { stack({}, 0); }), "stack", {"no tensors"});
}

// ---- reductions ----

TEST_CASE("sum, max, mean, min: bad and repeated axes") {
  CHECK(message_of<ShapeError>([] { sum(zeros({2, 3}), {2}); }) == "sum: input (2, 3): axis 2 is out of range for 2 dimensions");
  check_message(message_of<ShapeError>([] { sum(zeros({2, 3}), {-3}); }), "sum", {"(2, 3)", "axis -3"});
  check_message(message_of<ShapeError>([] { sum(zeros({2, 3}), {1, -1}); }), "sum", {"(2, 3)", "listed twice"});
  CHECK(message_of<ShapeError>([] { max(zeros({2, 3}), 2); }) == "max: input (2, 3): axis 2 is out of range for 2 dimensions");
  check_message(message_of<ShapeError>([] { max(zeros({2, 0}), 1); }), "max", {"(2, 0)", "empty"});
  check_message(message_of<ShapeError>([] { mean(zeros({2, 3}), {5}); }), "mean", {"(2, 3)", "axis 5"});
  check_message(message_of<ShapeError>([] { max(zeros({}), 0); }), "max", {"()", "axis 0 is out of range for 0 dimensions"});
}

// ---- indexing ----

TEST_CASE("index_select and index_add: an out-of-range index names the index, its position and the shape") {
  CHECK(message_of<ValueError>([] { index_select(zeros({3, 2}), 0, {0, 2, 5}); }) ==
        "index_select: index 5 at position 2 is out of range [0, 3) for axis 0 of shape (3, 2)");
  CHECK(message_of<ValueError>([] { index_select(zeros({3, 2}), 1, {-1}); }) ==
        "index_select: index -1 at position 0 is out of range [0, 2) for axis 1 of shape (3, 2)");
  check_message(message_of<ShapeError>([] { index_select(zeros({3, 2}), 2, {0}); }), "index_select",
                {"(3, 2)", "axis 2 is out of range"});
  check_message(message_of<ValueError>([] { index_add(zeros({2, 2}), {3, 2}, 0, {1, 3}); }), "index_add",
                {"index 3 at position 1", "[0, 3)", "(3, 2)"});
  check_message(message_of<ShapeError>([] { index_add(zeros({3, 2}), {3, 2}, 0, {1, 2}); }), "index_add",
                {"source (3, 2)", "target (3, 2)", "(2, 2)"});
}

TEST_CASE("gather and scatter_add: index out of range, index shape, index count, source shape") {
  CHECK(message_of<ValueError>([] { gather(zeros({2, 3}), 1, {0, 1, 3, 0}, {2, 2}); }) ==
        "gather: index 3 at position 2 is out of range [0, 3) for axis 1 of shape (2, 3)");
  check_message(message_of<ShapeError>([] { gather(zeros({2, 3}), 1, {0, 1, 2}, {3, 1}); }), "gather",
                {"input (2, 3)", "index (3, 1)", "every dimension but axis 1"});
  check_message(message_of<ValueError>([] { gather(zeros({2, 3}), 1, {0, 1, 2}, {2, 2}); }), "gather",
                {"3 indices", "(2, 2)"});
  check_message(message_of<ShapeError>([] { gather(zeros({2, 3}), -3, {0}, {1, 3}); }), "gather", {"(2, 3)", "axis -3"});
  check_message(message_of<ValueError>([] { scatter_add(zeros({2, 2}), {2, 3}, 1, {0, 1, 2, 7}, {2, 2}); }), "scatter_add",
                {"index 7 at position 3", "[0, 3)", "(2, 3)"});
  check_message(message_of<ShapeError>([] { scatter_add(zeros({2, 3}), {2, 3}, 1, {0, 1, 2, 0}, {2, 2}); }), "scatter_add",
                {"source (2, 3)", "index (2, 2)"});
}

// ---- compositions ----

TEST_CASE("compositions: transpose, squeeze, unsqueeze, split, chunk, sum_to_shape") {
  check_message(message_of<ShapeError>([] { transpose(zeros({3})); }), "transpose", {"(3,)", "at least 2 dimensions"});
  check_message(message_of<ShapeError>([] { squeeze(zeros({2, 3}), 1); }), "squeeze", {"(2, 3)", "axis 1", "size 1"});
  check_message(message_of<ShapeError>([] { unsqueeze(zeros({2, 3}), 4); }), "unsqueeze", {"(2, 3)", "axis 4"});
  check_message(message_of<ShapeError>([] { split(zeros({2, 5}), {2, 2}, 1); }), "split", {"(2, 5)", "add up to 4", "has 5"});
  check_message(message_of<ValueError>([] { chunk(zeros({4}), 0); }), "chunk", {"positive"});
  check_message(message_of<ShapeError>([] { sum_to_shape(zeros({3}), {2, 3}); }), "sum_to_shape",
                {"gradient (3,)", "target (2, 3)", "more dimensions"});
  check_message(message_of<ShapeError>([] { sum_to_shape(zeros({2, 3}), {2}); }), "sum_to_shape",
                {"gradient (2, 3)", "target (2,)", "must equal"});
}

TEST_CASE("softmax, log_softmax, logsumexp: a bad axis is a ShapeError naming the shape and the axis") {
  // These are compositions: the check that fires is their first primitive's (today it names "max").
  CHECK(message_of<ShapeError>([] { logsumexp(zeros({2, 3}), 2); }).find("(2, 3): axis 2 is out of range") !=
        std::string::npos);
  CHECK(message_of<ShapeError>([] { softmax(zeros({2, 3}), -3); }).find("axis -3 is out of range") != std::string::npos);
  CHECK(message_of<ShapeError>([] { log_softmax(zeros({2, 3}), 5); }).find("(2, 3)") != std::string::npos);
}

TEST_CASE("errors are thrown at record time, before anything is recorded") {
  Tape tape;
  Tensor a = zeros({3, 4}).set_requires_grad(), b = zeros({5, 2}).set_requires_grad();
  CHECK_THROWS_AS(matmul(a, b), ShapeError);
  CHECK_THROWS_AS(add(a, zeros({5})), ShapeError);
  CHECK_THROWS_AS(index_select(a, 0, {7}), ValueError);
  CHECK(tape.empty());
}

TEST_CASE("every rwd exception is an rwd::Error") {
  CHECK_THROWS_AS(matmul(zeros({3, 4}), zeros({5, 2})), Error);
  CHECK_THROWS_AS(add(zeros({2}, float32), zeros({2}, float64)), Error);
  CHECK_THROWS_AS(gather(zeros({2}), 0, {9}, {1}), Error);
}
