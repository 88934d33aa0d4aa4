//! Link settings N-API addons need (symbols resolved by the Node process at load time).

fn main() {
    napi_build::setup();
}
