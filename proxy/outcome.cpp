#include "proxy/outcome.h"

namespace pgmtls::proxy {

std::string_view to_string(Result result) {
  switch (result) {
    case Result::ok:
      return "ok";
    case Result::rejected:
      return "rejected";
    case Result::error:
      return "error";
  }
  return "error";
}

}  // namespace pgmtls::proxy
