// auth::ScramClient's readers of the backend's SASL messages (server-first-message,
// server-final-message) and base64_decode. Input: server-first, NUL, server-final.
#include <cstddef>
#include <cstdint>
#include <string>

#include "auth/scram.h"
#include "tests/fuzz/fuzz_common.h"

using namespace pgmtls;

namespace {

// The client nonce the fuzzer must echo (libFuzzer learns it from the comparison).
constexpr const char* kClientNonce = "rOprNGfwEbeRWgbNEkqO";

// Iteration counts up to the product's cap (100000) are valid, but PBKDF2 at that count would
// make each run slow; larger counts than a few thousand add no coverage.
bool too_many_iterations(std::string_view message) {
  for (std::size_t at = message.find("i="); at != std::string_view::npos;
       at = message.find("i=", at + 1)) {
    std::size_t digits = 0;
    std::uint64_t value = 0;
    for (std::size_t i = at + 2; i < message.size() && message[i] >= '0' && message[i] <= '9';
         ++i, ++digits) {
      value = value * 10 + static_cast<std::uint64_t>(message[i] - '0');
      if (digits > 6) return true;
    }
    if (value > 4096) return true;
  }
  return false;
}

void check_base64(std::string_view text) {
  const auto decoded = auth::base64_decode(text);
  if (!decoded) return;
  FUZZ_CHECK(decoded->size() <= text.size());
  const std::string encoded = auth::base64_encode(decoded->data(), decoded->size());
  const auto again = auth::base64_decode(encoded);
  FUZZ_CHECK(again && *again == *decoded);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto parts = fuzz::split_parts(fuzz::as_text(data, size), 2);
  check_base64(parts[0]);
  check_base64(parts[1]);
  if (too_many_iterations(parts[0])) return 0;

  const auto binding = static_cast<auth::ScramClient::ChannelBinding>(size % 3);
  const std::vector<std::uint8_t> cb_data(32, 0x5a);
  auth::ScramClient client("pencil", binding, cb_data, kClientNonce);
  FUZZ_CHECK(!client.client_first().empty());
  const auto final_message = client.client_final(parts[0]);
  if (!final_message) {
    FUZZ_CHECK(!client.error().empty());
    // A server-final before a valid server-first is never accepted.
    FUZZ_CHECK(!client.verify_server_final(parts[1]));
    return 0;
  }
  FUZZ_CHECK(final_message->find(",p=") != std::string::npos);
  if (client.verify_server_final(parts[1])) {
    // Only the real signature passes, and the fuzzer cannot compute HMAC-SHA-256.
    FUZZ_CHECK(parts[1].starts_with("v="));
  }
  return 0;
}
