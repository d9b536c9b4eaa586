/// The backward a layer has unless it provides one: none. Training through such a layer is
/// refused with a one-line error rather than silently dropping its gradient.
extension LinearLayer {
    public func backward(input x: UnsafePointer<Float>, outputGradient dy: UnsafePointer<Float>, rows m: Int,
                         inputGradient dx: UnsafeMutablePointer<Float>?) throws {
        throw InputError("\(Self.self)", "this layer has no backward pass, so gradients cannot flow through it")
    }
}
