// The device label: its bootstrap payload (device id + setup code, see
// BootstrapPayload) as a QR code, for the terminal, PNG and SVG.
//
// The payload holds the setup code: files are created with mode 0600 and the
// payload never goes to a log.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "credprov/protocol/identifiers.hpp"
#include "credprov/protocol/result.hpp"

namespace credprov::agent {

// A QR code as a square of modules (true = dark), without quiet zone.
struct QrMatrix {
    int size{0};
    std::vector<bool> dark;
    [[nodiscard]] bool at(int x, int y) const { return dark[static_cast<std::size_t>(y * size + x)]; }
};

[[nodiscard]] Result<QrMatrix> encode_qr(ByteView payload);
// Two modules per character row with Unicode half blocks, with a quiet zone;
// dark modules print as spaces on a light frame so phones read it from a dark terminal.
[[nodiscard]] std::string render_terminal(const QrMatrix& qr);
[[nodiscard]] std::string render_svg(const QrMatrix& qr, int module_px = 8);
[[nodiscard]] Status write_png(const QrMatrix& qr, const std::filesystem::path& path, int module_px = 8);
[[nodiscard]] Status write_private_file(const std::filesystem::path& path, std::string_view content);

}  // namespace credprov::agent
