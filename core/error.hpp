// rewind/core/error.hpp — the exceptions rewind throws, and the one helper that words shape errors.
#pragma once

#include <stdexcept>
#include <string>

#include "shape.hpp"

namespace rwd {

/// Base of every exception rewind throws.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Operand shapes that do not fit an op. The message names the op, the shapes and the rule.
class ShapeError : public Error {
 public:
  using Error::Error;
};

/// Operands of different dtypes, or a dtype an op does not take.
class DtypeError : public Error {
 public:
  using Error::Error;
};

/// Misuse of the tape: a value used after its tape was cleared, backward on a non-scalar without seed…
class TapeError : public Error {
 public:
  using Error::Error;
};

/// An argument out of its domain (an index out of range, a negative size…).
class ValueError : public Error {
 public:
  using Error::Error;
};

/// A file that cannot be read or written, or whose contents are wrong.
class IOError : public Error {
 public:
  using Error::Error;
};

/// Memory the system refused: a tensor's values could not be allocated. The message names the shape,
/// the dtype and the byte count (an rwd::Error, unlike the std::bad_alloc it replaces).
class MemoryError : public Error {
 public:
  using Error::Error;
};

/// One operand named in a shape error: `{"lhs", a.shape()}`.
struct Operand {
  const char* name;  ///< how the message calls it: "lhs", "input", "h0"
  Shape shape;       ///< its shape, printed as "(3, 4)"
};

/// Builds "op: lhs (3, 4) and rhs (5, 2): rule" — the one place shape messages are worded.
std::string shape_message(const char* op, std::initializer_list<Operand> operands, const std::string& rule);

/// Throws ShapeError with shape_message(op, operands, rule).
[[noreturn]] void throw_shape_error(const char* op, std::initializer_list<Operand> operands,
                                    const std::string& rule);

/// Rethrows the exception being handled (call it in a catch block) with `context` in front of its
/// message, as the same rwd type — ShapeError, DtypeError, ValueError, IOError, TapeError, MemoryError,
/// else Error (a subclass of one of them as that one) — so a caller catching the type still catches
/// it; any other exception unchanged. How load() and load_checkpoint add the file to a load's error.
[[noreturn]] void rethrow_with_context(const std::string& context);

}  // namespace rwd
