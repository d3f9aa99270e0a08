//! QR codes for enrolling an authenticator app, as `data:` URLs an `<img>` can show.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use qrcode::QrCode;
use qrcode::render::svg;

use crate::error::AuthError;

/// Smallest side, in pixels, of the rendered code; Medplum's PNG is about this size.
const MIN_SIDE: u32 = 200;

/// `text` as a QR code in a `data:image/svg+xml;base64,…` URL.
///
/// SVG, not the PNG (`data:image/png;base64,…`) that Medplum returns: every browser
/// shows either in an `<img src>`, and SVG needs no image-encoding dependency.
pub fn qr_data_url(text: &str) -> Result<String, AuthError> {
    let code = QrCode::new(text.as_bytes()).map_err(|e| AuthError::QrCode(e.to_string()))?;
    let image = code
        .render::<svg::Color<'_>>()
        .min_dimensions(MIN_SIDE, MIN_SIDE)
        .dark_color(svg::Color("#000000"))
        .light_color(svg::Color("#ffffff"))
        .build();
    Ok(format!(
        "data:image/svg+xml;base64,{}",
        STANDARD.encode(image)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes the data URL back to the SVG text.
    fn svg_of(url: &str) -> String {
        let b64 = url.strip_prefix("data:image/svg+xml;base64,").unwrap();
        String::from_utf8(STANDARD.decode(b64).unwrap()).unwrap()
    }

    /// Rasterises the SVG this module writes (one `<path>` of `M x y h w v h H x V y`
    /// rectangles) and reads it back with an independent QR decoder.
    fn decode_qr(svg_text: &str) -> String {
        let attr = |name: &str| -> usize {
            let start = svg_text.find(&format!(" {name}=\"")).unwrap() + name.len() + 3;
            let len = svg_text[start..].find('"').unwrap();
            svg_text[start..start + len].parse().unwrap()
        };
        let (w, h) = (attr("width"), attr("height"));
        let d_start = svg_text.find(" d=\"").unwrap() + 4;
        let d_len = svg_text[d_start..].find('"').unwrap();
        let mut dark = vec![false; w * h];
        for rect in svg_text[d_start..d_start + d_len]
            .split('M')
            .filter(|s| !s.is_empty())
        {
            let nums: Vec<usize> = rect
                .split(|c: char| !c.is_ascii_digit())
                .filter(|s| !s.is_empty())
                .map(|s| s.parse().unwrap())
                .collect();
            let (left, top, width, height) = (nums[0], nums[1], nums[2], nums[3]);
            for y in top..top + height {
                for x in left..left + width {
                    dark[y * w + x] = true;
                }
            }
        }
        let mut img = rqrr::PreparedImage::prepare_from_bitmap(w, h, |x, y| dark[y * w + x]);
        let grids = img.detect_grids();
        assert_eq!(grids.len(), 1);
        grids[0].decode().unwrap().1
    }

    #[test]
    fn data_url_holds_an_svg_that_decodes_to_the_text() {
        let uri = "otpauth://totp/medplum.com:Medplum%20-%20user%40example.com?secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP&period=30&digits=6&algorithm=SHA1&issuer=medplum.com";
        let url = qr_data_url(uri).unwrap();
        let svg_text = svg_of(&url);
        assert!(svg_text.starts_with("<?xml"), "{svg_text}");
        assert!(svg_text.contains("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(svg_text.ends_with("</svg>"));
        assert_eq!(decode_qr(&svg_text), uri);
    }

    #[test]
    fn different_texts_give_different_codes() {
        let a = svg_of(&qr_data_url("otpauth://totp/a?secret=AAAA").unwrap());
        let b = svg_of(&qr_data_url("otpauth://totp/a?secret=BBBB").unwrap());
        assert_ne!(a, b);
        assert_eq!(decode_qr(&b), "otpauth://totp/a?secret=BBBB");
    }

    #[test]
    fn too_long_text_is_an_error() {
        // A version 40 code holds at most 2953 bytes.
        let err = qr_data_url(&"x".repeat(4000)).unwrap_err();
        assert!(matches!(err, AuthError::QrCode(_)));
    }
}
