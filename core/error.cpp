// rewind/core/error.cpp — an error rethrown with context, keeping its type.
#include "error.hpp"

namespace rwd {

void rethrow_with_context(const std::string& context) {
  try {
    throw;
  } catch (const ShapeError& e) {
    throw ShapeError(context + e.what());
  } catch (const DtypeError& e) {
    throw DtypeError(context + e.what());
  } catch (const ValueError& e) {
    throw ValueError(context + e.what());
  } catch (const IOError& e) {
    throw IOError(context + e.what());
  } catch (const TapeError& e) {
    throw TapeError(context + e.what());
  } catch (const MemoryError& e) {
    throw MemoryError(context + e.what());
  } catch (const Error& e) {
    throw Error(context + e.what());
  }
}

}  // namespace rwd
