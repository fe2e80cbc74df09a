//! Numbers with names: RST_STREAM and GOAWAY status codes and SETTINGS entries.

pub const SETTINGS_UPLOAD_BANDWIDTH: u32 = 1;
pub const SETTINGS_DOWNLOAD_BANDWIDTH: u32 = 2;
pub const SETTINGS_ROUND_TRIP_TIME: u32 = 3;
pub const SETTINGS_MAX_CONCURRENT_STREAMS: u32 = 4;
pub const SETTINGS_CURRENT_CWND: u32 = 5;
pub const SETTINGS_DOWNLOAD_RETRANS_RATE: u32 = 6;
pub const SETTINGS_INITIAL_WINDOW_SIZE: u32 = 7;
pub const SETTINGS_CLIENT_CERTIFICATE_VECTOR_SIZE: u32 = 8;
pub const SETTINGS_FLAG_PERSIST_VALUE: u8 = 0x01;
pub const SETTINGS_FLAG_PERSISTED: u8 = 0x02;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setting {
    pub flags: u8,
    /// 24 bits on the wire.
    pub id: u32,
    pub value: u32,
}

macro_rules! status_enum {
    ($(#[$m:meta])* $name:ident { $($variant:ident = $code:literal => $text:literal,)* }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($variant,)*
            Unknown(u32),
        }

        impl $name {
            pub fn code(self) -> u32 {
                match self {
                    $($name::$variant => $code,)*
                    $name::Unknown(c) => c,
                }
            }

            pub fn from_code(code: u32) -> Self {
                match code {
                    $($code => $name::$variant,)*
                    c => $name::Unknown(c),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                match self {
                    $($name::$variant => f.write_str($text),)*
                    $name::Unknown(c) => write!(f, "unknown status {c}"),
                }
            }
        }
    };
}

status_enum! {
    /// RST_STREAM status codes.
    RstStatus {
        ProtocolError = 1 => "PROTOCOL_ERROR",
        InvalidStream = 2 => "INVALID_STREAM",
        RefusedStream = 3 => "REFUSED_STREAM",
        UnsupportedVersion = 4 => "UNSUPPORTED_VERSION",
        Cancel = 5 => "CANCEL",
        InternalError = 6 => "INTERNAL_ERROR",
        FlowControlError = 7 => "FLOW_CONTROL_ERROR",
        StreamInUse = 8 => "STREAM_IN_USE",
        StreamAlreadyClosed = 9 => "STREAM_ALREADY_CLOSED",
        InvalidCredentials = 10 => "INVALID_CREDENTIALS",
        FrameTooLarge = 11 => "FRAME_TOO_LARGE",
    }
}

status_enum! {
    /// GOAWAY status codes.
    GoAwayStatus {
        Ok = 0 => "OK",
        ProtocolError = 1 => "PROTOCOL_ERROR",
        InternalError = 2 => "INTERNAL_ERROR",
    }
}
