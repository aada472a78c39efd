output "instance_id" {
  description = "EC2 instance id."
  value       = aws_instance.this.id
}

output "private_ip" {
  description = "Private address Ansible connects to (over VPN from an admin network)."
  value       = aws_instance.this.private_ip
}

output "data_volume_id" {
  description = "EBS volume holding the shares (encrypted with the volume key); Ansible mounts it on the share root, found by this id."
  value       = aws_volume_attachment.data.volume_id
}

output "public_ip" {
  description = "Public address, empty unless associate_public_ip is set."
  value       = aws_instance.this.public_ip
}

output "security_group_id" {
  description = "The host's security group."
  value       = aws_security_group.this.id
}

output "volume_kms_key_arn" {
  description = "KMS key encrypting the host's volumes."
  value       = aws_kms_key.volumes.arn
}
