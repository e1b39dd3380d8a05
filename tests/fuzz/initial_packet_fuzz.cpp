// protocol::parse_initial_packet: the first bytes any client sends, before TLS.
#include <cstddef>
#include <cstdint>
#include <variant>

#include "protocol/builders.h"
#include "protocol/initial_packet.h"
#include "tests/fuzz/fuzz_common.h"

using namespace pgmtls::protocol;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const Bytes input(data, size);
  const auto parsed = parse_initial_packet(input);
  if (const auto* need = std::get_if<NeedMore>(&parsed)) {
    FUZZ_CHECK(need->bytes > 0);
    FUZZ_CHECK(size + need->bytes <= kMaxStartupPacketLength);
    return 0;
  }
  const auto* packet = std::get_if<InitialPacket>(&parsed);
  if (packet == nullptr) {
    FUZZ_CHECK(!std::get<ParseError>(parsed).message.empty());
    return 0;
  }
  FUZZ_CHECK(packet->length >= kMinInitialPacketLength);
  FUZZ_CHECK(packet->length <= kMaxStartupPacketLength);
  FUZZ_CHECK(packet->length <= size);
  FUZZ_CHECK(!to_string(packet->kind).empty());
  // The packet's own bytes parse to the same kind; one byte fewer is never a whole packet.
  const auto exact = parse_initial_packet(input.first(packet->length));
  FUZZ_CHECK(std::holds_alternative<InitialPacket>(exact));
  FUZZ_CHECK(std::get<InitialPacket>(exact).kind == packet->kind);
  FUZZ_CHECK(!std::holds_alternative<InitialPacket>(
      parse_initial_packet(input.first(packet->length - 1))));
  if (packet->kind == InitialPacketKind::PeerCancelRequest) {
    FUZZ_CHECK(packet->length == kPeerCancelRequestLength);
    FUZZ_CHECK(packet->peer_cancel.signed_bytes.size() == kPeerCancelRequestLength - 4 - 32);
  }
  if (packet->kind == InitialPacketKind::StartupMessage) {
    const StartupMessage& startup = packet->startup;
    FUZZ_CHECK(startup.major_version == 3);
    FUZZ_CHECK(!startup.user().empty());
    FUZZ_CHECK(!startup.database().empty());
    for (const auto& option : startup.protocol_options())
      FUZZ_CHECK(startup.find(option) != nullptr);
    for (const auto& [name, value] : startup.parameters) {
      FUZZ_CHECK(!name.empty());
      FUZZ_CHECK(name.find('\0') == std::string::npos);
      FUZZ_CHECK(value.find('\0') == std::string::npos);
    }
    // The StartupMessage pgmtls builds for the backend from these parameters reads back the same.
    const auto rebuilt = startup_message(startup.parameters);
    const auto reparsed = parse_initial_packet(rebuilt);
    FUZZ_CHECK(std::holds_alternative<InitialPacket>(reparsed));
    FUZZ_CHECK(std::get<InitialPacket>(reparsed).startup.parameters == startup.parameters);
  }
  return 0;
}
