// protocol::parse_message and the readers of its payloads: the backend's bytes during start-up
// (Authentication requests, SASL mechanism lists, ErrorResponse / NoticeResponse fields).
#include <cstddef>
#include <cstdint>
#include <variant>

#include "protocol/builders.h"
#include "protocol/message.h"
#include "tests/fuzz/fuzz_common.h"

using namespace pgmtls::protocol;

namespace {

void inspect(const Message& message) {
  if (auto code = authentication_code(message)) {
    FUZZ_CHECK(!authentication_name(*code).empty());
    FUZZ_CHECK(authentication_data(message).size() + 4 == message.payload.size());
  }
  if (auto mechanisms = sasl_mechanisms(message)) {
    for (const auto& name : *mechanisms)
      FUZZ_CHECK(!name.empty() && name.find('\0') == std::string::npos);
  }
  const auto fields = parse_error_fields(message.payload);
  for (const auto& [type, value] : fields) {
    FUZZ_CHECK(type != '\0');
    FUZZ_CHECK(value.find('\0') == std::string::npos);
  }
  // What pgmtls builds from such fields reads back the same (the builder leaves empty fields out).
  if (message.type == backend_type::kErrorResponse && fields.contains('M') &&
      !fields.at('M').empty()) {
    ErrorFields out;
    out.sqlstate = fields.contains('C') ? std::string_view(fields.at('C')) : "08P01";
    out.message = fields.at('M');
    const auto bytes = error_response(out);
    const auto reparsed = parse_message(bytes, bytes.size());
    FUZZ_CHECK(std::holds_alternative<Message>(reparsed));
    const auto again = parse_error_fields(std::get<Message>(reparsed).payload);
    FUZZ_CHECK(again.contains('M') && again.at('M') == fields.at('M'));
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  // The first byte picks the payload cap, so that small caps are reached too.
  const std::size_t max_payload = data[0] < 0x80 ? std::size_t{data[0]} : std::size_t{1} << 20;
  Bytes rest(data + 1, size - 1);
  // A stream of messages, framed one after another as the session reads them.
  for (;;) {
    const auto parsed = parse_message(rest, max_payload);
    if (const auto* need = std::get_if<NeedMore>(&parsed)) {
      FUZZ_CHECK(need->bytes > 0);
      break;
    }
    if (std::holds_alternative<ParseError>(parsed)) break;
    const Message& message = std::get<Message>(parsed);
    FUZZ_CHECK(message.size >= 5 && message.size <= rest.size());
    FUZZ_CHECK(message.payload.size() + 5 == message.size);
    FUZZ_CHECK(message.payload.size() <= max_payload);
    FUZZ_CHECK(message.payload.data() == rest.data() + 5);
    FUZZ_CHECK(
        !std::holds_alternative<Message>(parse_message(rest.first(message.size - 1), max_payload)));
    inspect(message);
    rest = rest.subspan(message.size);
  }
  return 0;
}
