// protocol::parse_proxy_header: the first bytes a load balancer sends, before anything else.
#include <cstddef>
#include <cstdint>
#include <variant>

#include "protocol/proxy_header.h"
#include "tests/fuzz/fuzz_common.h"

using namespace pgmtls::protocol;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const Bytes input(data, size);
  const auto parsed = parse_proxy_header(input);
  if (const auto* need = std::get_if<NeedMore>(&parsed)) {
    // Never asks for more than a header can hold, so a reader cannot take the client's bytes.
    FUZZ_CHECK(need->bytes > 0);
    FUZZ_CHECK(size + need->bytes <= 16 + kMaxProxyV2Payload);
    return 0;
  }
  const auto* header = std::get_if<ProxyHeader>(&parsed);
  if (header == nullptr) {
    FUZZ_CHECK(!std::get<ParseError>(parsed).message.empty());
    return 0;
  }
  FUZZ_CHECK(header->length > kProxyHeaderProbe && header->length <= size);
  FUZZ_CHECK(header->version == 1 || header->version == 2);
  if (header->version == 1) FUZZ_CHECK(header->length <= kMaxProxyV1Length);
  if (!header->local) FUZZ_CHECK(!header->source_text().empty());
  // The header's own bytes parse the same; one byte fewer never does.
  const auto exact = parse_proxy_header(input.first(header->length));
  FUZZ_CHECK(std::holds_alternative<ProxyHeader>(exact));
  FUZZ_CHECK(std::get<ProxyHeader>(exact).length == header->length);
  const auto shorter = parse_proxy_header(input.first(header->length - 1));
  FUZZ_CHECK(!std::holds_alternative<ProxyHeader>(shorter));
  return 0;
}
