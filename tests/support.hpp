// tests/support.hpp — small helpers several test files share.
#pragma once

#include <doctest/doctest.h>

#include <exception>
#include <string>

/// Runs `f`, which must throw an E, and returns the message; a failed check (and "") if it throws
/// nothing or something else.
template <class E, class F>
std::string message_of(F&& f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  } catch (const std::exception& e) {
    FAIL_CHECK("threw the wrong exception type: " << e.what());
    return "";
  }
  FAIL_CHECK("did not throw");
  return "";
}

/// Whether `text` contains `part`.
inline bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }
