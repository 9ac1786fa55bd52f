// Scaling
